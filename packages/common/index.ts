import type { Component } from '../../src/configurator/component';
import { COMMON_SCHEMA } from './config-schema';

/**
 * uec-provisioning-common: configuration, the CLI, node state and preseeds. Its
 * debconf answers become the managed drop-in (`config set`); it renders no daemon
 * configuration of its own yet.
 */
export const component: Component = {
  name: 'common',
  package: 'uec-provisioning-common',
  summary: 'configuration, command-line tool, node state and preseeds',
  configSchema: COMMON_SCHEMA,
  plan: async () => [],
};
