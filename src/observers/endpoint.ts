/**
 * Where the Docker Engine listens, from DOCKER_HOST: read with the settings
 * at every start, so kept apart from the Engine client (which only the
 * commands that reach the Engine load).
 */

/** Where the Engine listens, from DOCKER_HOST. */
export interface Endpoint {
  readonly display: string
  readonly socketPath: string | undefined
  readonly baseUrl: string
}

/** Parses DOCKER_HOST; undefined input means the default socket. Returns an error message for a bad value. */
export const parseDockerHost = (value: string | undefined): Endpoint | string => {
  const v = value === undefined || value === "" ? "unix:///var/run/docker.sock" : value
  if (v.startsWith("unix://")) {
    const path = v.slice("unix://".length)
    if (!path.startsWith("/")) return `DOCKER_HOST=${v}: a unix socket path must be absolute`
    return { display: v, socketPath: path, baseUrl: "http://docker" }
  }
  const tcp = /^tcp:\/\/([^/:]+|\[[0-9a-fA-F:]+\]):([0-9]{1,5})\/?$/.exec(v)
  if (tcp) return { display: v, socketPath: undefined, baseUrl: `http://${tcp[1]}:${tcp[2]}` }
  return `DOCKER_HOST=${v}: expected unix:///path/to/docker.sock or tcp://host:port`
}
