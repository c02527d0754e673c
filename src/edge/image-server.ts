/**
 * Who sends the installer kernel and initrd, from the configuration and apache2's state:
 * the I/O side of selectImagesFromApache (boot.ts).
 */
import * as fs from 'node:fs';
import type { EffectiveConfig } from '../core/config';
import type { Paths } from '../core/paths';
import { APACHE_IMAGES, type ImageServer, type ImageSettings } from './boot';

/** How long the answer to "is apache2's drop-in enabled" is reused: a2enconf shows within a second. */
const ENABLED_CACHE_MS = 1000;

export function loadImageOptions(paths: Paths, config: EffectiveConfig, now: () => number = Date.now): { settings: ImageSettings; apacheEnabled: () => boolean } {
  const settings: ImageSettings = { server: config.getString('boot.image_server') as ImageServer, apachePort: config.getNumber('boot.image_http_port') };
  const enabledPath = paths.resolve(APACHE_IMAGES.enabled);
  let checked = { at: -Infinity, enabled: false };
  const apacheEnabled = () => {
    const t = now();
    if (t - checked.at >= ENABLED_CACHE_MS) checked = { at: t, enabled: fs.existsSync(enabledPath) };
    return checked.enabled;
  };
  return { settings, apacheEnabled };
}
