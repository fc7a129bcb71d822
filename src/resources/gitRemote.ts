/**
 * A git remote as the git gate reaches it: over SSH only (the gate holds the
 * credential and a pinned host key), written `ssh://[user@]host[:port]/path`
 * or scp-like `[user@]host:path`. The agent may write the same remote in any
 * of its usual spellings (those two, and `https://host/path`); each is
 * rewritten to the gate. Pure.
 */

export interface GitRemoteUrl {
  readonly user: string
  readonly host: string
  readonly port: number
  /** The path on the host, as the remote's URL writes it (scp-like: relative to the user's home). */
  readonly path: string
  /** How known_hosts names this host: `host`, or `[host]:port` off port 22. */
  readonly knownHostsName: string
  /** Every spelling of this remote the agent may use (the URL as written first). */
  readonly spellings: ReadonlyArray<string>
}

const HOST = /^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/
const USER = /^[A-Za-z0-9._-]{1,64}$/
/** Printable, no spaces, quotes, backslashes or shell metacharacters: the gate's scripts never need to quote a path. */
const PATH = /^[A-Za-z0-9._~/+@=-]{1,512}$/

/** The remote a URL names, or what is wrong with it (written for the user). */
export const parseGitRemoteUrl = (url: string): GitRemoteUrl | string => {
  let user = "git"
  let host: string
  let port = 22
  let path: string
  let m: RegExpExecArray | null
  if (/^[a-z]+::/i.test(url)) return "is not a git remote URL: git's <transport>:: form runs commands; write ssh://user@host/path or user@host:path"
  if ((m = /^ssh:\/\/(?:([^@/]+)@)?([^/:]+)(?::([0-9]{1,5}))?(\/.*)$/.exec(url)) !== null) {
    if (m[1] !== undefined) user = m[1]
    host = m[2]!
    if (m[3] !== undefined) port = Number(m[3])
    path = m[4]!
  } else if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) {
    return "the git gate reaches remotes over SSH only: write ssh://user@host/path or user@host:path"
  } else if ((m = /^(?:([^@/:]+)@)?([^/:]+):(?!\/\/)(.+)$/.exec(url)) !== null) {
    if (m[1] !== undefined) user = m[1]
    host = m[2]!
    path = m[3]!
  } else {
    return "is not a git remote URL: write ssh://user@host/path or user@host:path"
  }
  if (!USER.test(user)) return `user '${user}' is not a plain user name`
  if (!HOST.test(host) || host.length > 253) return `host '${host}' is not a host name`
  if (port < 1 || port > 65535) return `port ${port} is not a port`
  if (!PATH.test(path) || path.split("/").includes("..")) return "path must be plain (letters, digits and ._~/+@=-, no '..')"
  const lower = host.toLowerCase()
  const portPart = port === 22 ? "" : `:${port}`
  const absolute = path.startsWith("/") ? path : `/${path}`
  const spellings = [
    url,
    `ssh://${user}@${lower}${portPart}${absolute}`,
    ...(port === 22 ? [`${user}@${lower}:${path.replace(/^\//, "")}`, `https://${lower}${absolute}`] : [])
  ]
  return {
    user,
    host: lower,
    port,
    path,
    knownHostsName: port === 22 ? lower : `[${lower}]:${port}`,
    spellings: [...new Set(spellings)]
  }
}

const KEY_TYPES = ["ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa", "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com"]

export interface HostKey {
  /** The names the key is for, as known_hosts writes them (`host` or `[host]:port`, comma-separated). */
  readonly names: ReadonlyArray<string>
  readonly line: string
}

/**
 * One pinned host key as a known_hosts line (`host[,host2] type base64`), or
 * what is wrong with it. Hashed names (`|1|…`), markers (`@cert-authority`,
 * `@revoked`) and wildcards are refused: each remote's host is pinned by name.
 */
export const parseHostKey = (text: string): HostKey | string => {
  const line = text.trim()
  if (/[\r\n\0]/.test(line)) return "must be one line"
  const parts = line.split(/\s+/)
  if (parts.length < 3) return "expected a known_hosts line: host key-type base64-key"
  const [names, type, key] = parts as [string, string, string]
  if (names.startsWith("@") || names.startsWith("|")) return "markers and hashed host names are not supported: name the host"
  if (/[*?!]/.test(names)) return "wildcards are not allowed: pin each host by name"
  if (!KEY_TYPES.includes(type)) return `key type '${type}' is not one of ${KEY_TYPES.join(", ")}`
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(key) || key.length < 32) return "the key is not base64"
  const list = names.split(",").map((n) => n.toLowerCase())
  if (list.some((n) => !/^(\[[a-z0-9.-]+\]:[0-9]{1,5}|[a-z0-9.-]+)$/.test(n))) return `'${names}' is not a list of host names`
  return { names: list, line: `${list.join(",")} ${type} ${key}` }
}
