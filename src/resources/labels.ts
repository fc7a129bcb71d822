/** Label keys bottle sets and reads. */

export const Compose = {
  project: "com.docker.compose.project",
  service: "com.docker.compose.service",
  containerNumber: "com.docker.compose.container-number",
  oneoff: "com.docker.compose.oneoff",
  configHash: "com.docker.compose.config-hash",
  network: "com.docker.compose.network",
  volume: "com.docker.compose.volume",
  version: "com.docker.compose.version"
} as const

export const Bottle = {
  managedBy: "dev.bottle.managed-by",
  bottle: "dev.bottle.bottle",
  set: "dev.bottle.set",
  /** Hash of the part of the spec one resource realises: a change replaces that resource alone. */
  specHash: "dev.bottle.spec-hash",
  /** Short per-field hashes, so a replacement can say which field changed. */
  specFields: "dev.bottle.spec-fields",
  backend: "dev.bottle.backend"
} as const

export const MANAGED_BY = "bottle"

/** The Compose version bottle writes into the compose labels it sets. */
export const COMPOSE_VERSION_LABEL = "2.0.0-bottle"
