/**
 * The one meaning of `egress.allow`, whatever proxy enforces it. Pure.
 *
 * - `host` is that host only: case-insensitive, a trailing dot ignored.
 * - `*.d` is every subdomain of `d`, at any depth, and not `d` itself.
 * - `:port` limits an entry to one port; without it, 443 and 80.
 * - `*`, `*.<one label>` (a whole top-level domain) and IP addresses are refused:
 *   the fence is written in names a person can read and check.
 */

export const DEFAULT_PORTS: ReadonlyArray<number> = [443, 80]

export interface AllowRule {
  /** The entry as written in the spec. */
  readonly entry: string
  /** Lowercase, without a trailing dot or the `*.` of a wildcard. */
  readonly domain: string
  /** True for `*.d`: subdomains of `domain`, not `domain` itself. */
  readonly wildcard: boolean
  readonly ports: ReadonlyArray<number>
}

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/
const IPV4 = /^[0-9]+(\.[0-9]+){3}$/

/** Parses one entry, or says what is wrong with it. */
export const parseAllowEntry = (entry: string): AllowRule | string => {
  if (entry === "") return "must not be empty"
  if (/\s/.test(entry)) return "must not contain spaces"
  let rest = entry.toLowerCase()
  if (rest.includes("/")) return "expected a host name such as api.anthropic.com, not a URL"
  if (rest.startsWith("[") || (rest.match(/:/g)?.length ?? 0) > 1) return "IP addresses are not allowed: name the host"
  let ports = DEFAULT_PORTS
  const colon = rest.lastIndexOf(":")
  if (colon >= 0) {
    const p = rest.slice(colon + 1)
    if (!/^[0-9]{1,5}$/.test(p) || Number(p) < 1 || Number(p) > 65535) return `port '${p}' must be a number from 1 to 65535`
    ports = [Number(p)]
    rest = rest.slice(0, colon)
  }
  if (rest === "*") return "'*' would allow every host: list the hosts the agent needs"
  const wildcard = rest.startsWith("*.")
  if (wildcard) rest = rest.slice(2)
  if (rest.endsWith(".")) rest = rest.slice(0, -1)
  if (rest.includes("*")) return "a wildcard is only allowed as a whole first label, as in *.github.com"
  if (IPV4.test(rest)) return "IP addresses are not allowed: name the host"
  const labels = rest.split(".")
  if (rest.length > 253 || labels.some((l) => !LABEL.test(l))) return "expected a host name such as api.anthropic.com or *.github.com"
  if (wildcard && labels.length < 2) return `'*.${rest}' would allow a whole top-level domain: name a domain under it`
  return { entry, domain: rest, wildcard, ports }
}

/** Parses a list already checked by the spec schema; a bad entry here is a bug. */
export const parseAllowList = (entries: ReadonlyArray<string>): ReadonlyArray<AllowRule> =>
  entries.map((e) => {
    const r = parseAllowEntry(e)
    if (typeof r === "string") throw new Error(`egress.allow entry '${e}' should have been refused by the spec: ${r}`)
    return r
  })

/** The host a request names, as the rules compare it: lowercase, no trailing dot. */
export const normaliseHost = (host: string): string => host.toLowerCase().replace(/\.$/, "")

/** The first rule that allows `host:port`, if any. */
export const allowedBy = (rules: ReadonlyArray<AllowRule>, host: string, port: number): AllowRule | undefined => {
  const h = normaliseHost(host)
  return rules.find((r) => r.ports.includes(port) && (r.wildcard ? h.endsWith(`.${r.domain}`) && h.length > r.domain.length + 1 : h === r.domain))
}
