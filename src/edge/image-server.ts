/**
 * Who sends the installer kernel and initrd, from the configuration and apache2's state:
 * the I/O side of selectImagesFromApache (boot.ts).
 */
import * as fs from 'node:fs';
import type { EffectiveConfig } from '../core/config';
import type { Paths } from '../core/paths';
import { createRecentLoader } from '../core/recent';
import { APACHE_IMAGES, type ImageServer, type ImageSettings } from './boot';

export function loadImageOptions(paths: Paths, config: EffectiveConfig, now: () => number = Date.now): { settings: ImageSettings; apacheEnabled: () => Promise<boolean> } {
  const settings: ImageSettings = { server: config.getString('boot.image_server') as ImageServer, apachePort: config.getNumber('boot.image_http_port') };
  const enabledPath = paths.resolve(APACHE_IMAGES.enabled);
  // Looked at most once a second (createRecentLoader): a2enconf and a2disconf show within it.
  return { settings, apacheEnabled: createRecentLoader(async () => fs.existsSync(enabledPath), { now }) };
}
