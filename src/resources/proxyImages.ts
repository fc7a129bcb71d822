/** The egress proxies' published images (a constant apart: the settings read it at every start). */

/** mitmproxy's published image: the default egress proxy (and the image probes run in). */
export const DEFAULT_MITMPROXY_IMAGE = "mitmproxy/mitmproxy:12.2.1"
/** pipelock's published image, for `egress.proxy: pipelock`. */
export const DEFAULT_PIPELOCK_IMAGE = "ghcr.io/luckypipewrench/pipelock:2.3.0"
