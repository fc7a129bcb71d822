/**
 * Subnets for bottle's networks, from a pool bottle owns (BOTTLE_SUBNETS),
 * instead of the Engine's default address pools (about 30 networks, so
 * about 15 bottles per engine). Each network gets a /28. A network keeps the
 * subnet it was made with; a new one starts at a place derived from its name
 * (so it gets the same subnet again when free) and takes the first free /28
 * from there, checked against every network the Engine has. IPv4 only. Pure.
 */
import { hashOf } from "./hash.js"

/** RFC 2544's benchmarking range: private, and outside Docker's, Podman's and common LAN ranges. */
export const DEFAULT_SUBNET_POOL = "198.18.0.0/15"
/** Each network's prefix length: 16 addresses, 13 for containers (agent, proxy and the sidecars to come). */
export const NETWORK_PREFIX = 28

export interface Cidr {
  /** The network address as an unsigned 32-bit number. */
  readonly base: number
  readonly bits: number
}

const ipToNumber = (ip: string): number | undefined => {
  const parts = ip.split(".")
  if (parts.length !== 4) return undefined
  let n = 0
  for (const p of parts) {
    if (!/^[0-9]{1,3}$/.test(p) || Number(p) > 255) return undefined
    n = n * 256 + Number(p)
  }
  return n
}

export const numberToIp = (n: number): string => [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join(".")

const size = (c: Cidr) => 2 ** (32 - c.bits)

/** `a.b.c.d/n` (IPv4), or a message saying what is wrong. */
export const parseCidr = (text: string): Cidr | string => {
  const m = /^([0-9.]+)\/([0-9]{1,2})$/.exec(text.trim())
  const ip = m ? ipToNumber(m[1]!) : undefined
  const bits = m ? Number(m[2]) : NaN
  if (m === null || ip === undefined || !(bits >= 0 && bits <= 32)) return `'${text}' is not an IPv4 CIDR such as ${DEFAULT_SUBNET_POOL}`
  const c = { base: ip - (ip % 2 ** (32 - bits)), bits }
  if (c.base !== ip) return `'${text}' has host bits set (did you mean ${formatCidr(c)}?)`
  return c
}

export const formatCidr = (c: Cidr) => `${numberToIp(c.base)}/${c.bits}`

export const overlaps = (a: Cidr, b: Cidr) => a.base < b.base + size(b) && b.base < a.base + size(a)

/** The last address a container can have in a subnet (below the broadcast address). */
export const lastHost = (c: Cidr, back = 0) => numberToIp(c.base + size(c) - 2 - back)
/** The address an Engine gives a network's gateway when none is named: the subnet's first host. */
export const firstHost = (c: Cidr) => numberToIp(c.base + 1)

/**
 * Up to `count` free /28s for the network named `key`, in the order to try
 * them: from a start derived from the name, the first ones that overlap
 * nothing `taken` holds. Empty when the pool is full.
 */
export const freeSubnets = (key: string, pool: ReadonlyArray<Cidr>, taken: ReadonlyArray<Cidr>, count: number): ReadonlyArray<Cidr> => {
  const slots = pool.flatMap((p) => (p.bits > NETWORK_PREFIX ? [] : [{ p, n: size(p) / 2 ** (32 - NETWORK_PREFIX) }]))
  const total = slots.reduce((s, x) => s + x.n, 0)
  if (total === 0) return []
  const start = parseInt(hashOf(key).slice(0, 8), 16) % total
  const out: Array<Cidr> = []
  for (let i = 0; i < total && out.length < count; i++) {
    let k = (start + i) % total
    const slot = slots.find((s) => (k < s.n ? true : ((k -= s.n), false)))!
    const c = { base: slot.p.base + k * 2 ** (32 - NETWORK_PREFIX), bits: NETWORK_PREFIX }
    if (!taken.some((t) => overlaps(t, c)) && !out.some((o) => overlaps(o, c))) out.push(c)
  }
  return out
}
