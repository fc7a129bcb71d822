/**
 * Subnets from bottle's own pool: one engine holds a hundred bottles, a
 * network gets the same subnet again when it is free, nothing overlaps
 * what the Engine already has, and a bottle that cannot get all its
 * networks is not started at all (never half-made).
 */
import { describe, expect, it } from "vitest"
import { plan } from "../src/reconcilers/plan.js"
import { formatCidr, freeSubnets, lastHost, overlaps, parseCidr, type Cidr } from "../src/resources/subnets.js"
import { bottle, emptyWorld, network, observed, options } from "./support/fixtures.js"

const cidr = (s: string): Cidr => {
  const c = parseCidr(s)
  if (typeof c === "string") throw new Error(c)
  return c
}

describe("subnets", () => {
  it("parses and refuses CIDRs", () => {
    expect(formatCidr(cidr("198.18.0.0/15"))).toBe("198.18.0.0/15")
    expect(parseCidr("198.18.0.1/15")).toContain("host bits set")
    expect(parseCidr("10.0.0.0")).toContain("not an IPv4 CIDR")
    expect(parseCidr("300.0.0.0/8")).toContain("not an IPv4 CIDR")
    expect(lastHost(cidr("198.18.0.16/28"))).toBe("198.18.0.30")
  })

  it("gives a hundred bottles' two hundred networks distinct /28s from the default pool", () => {
    const pool = [cidr("198.18.0.0/15")]
    const taken: Array<Cidr> = []
    for (let i = 0; i < 200; i++) {
      const [c] = freeSubnets(`claude-bottle/b${i}`, pool, taken, 1)
      expect(c!.bits).toBe(28)
      expect(overlaps(c!, pool[0]!)).toBe(true)
      expect(taken.some((t) => overlaps(t, c!))).toBe(false)
      taken.push(c!)
    }
  })

  it("the same name starts at the same place: a network made anew gets its subnet back when free", () => {
    const pool = [cidr("198.18.0.0/15")]
    expect(freeSubnets("p/n", pool, [], 1)).toEqual(freeSubnets("p/n", pool, [], 1))
    const first = freeSubnets("p/n", pool, [], 1)[0]!
    // Taken by someone else: the next free one.
    const next = freeSubnets("p/n", pool, [first], 1)[0]!
    expect(overlaps(next, first)).toBe(false)
  })

  it("skips what any network on the engine holds, even a wider one", () => {
    const pool = [cidr("10.200.0.0/26")] // four /28s
    const taken = [cidr("10.200.0.0/27")] // covers two of them
    const free = freeSubnets("x", pool, taken, 4).map(formatCidr).sort()
    expect(free).toEqual(["10.200.0.32/28", "10.200.0.48/28"])
    expect(freeSubnets("x", pool, [cidr("10.0.0.0/8")], 4)).toEqual([])
  })
})

describe("the planner gives out subnets", () => {
  const withPool = (pool: string) => ({ ...options(), subnetPool: [cidr(pool)] })
  const subnetsOf = (p: ReturnType<typeof plan>) =>
    Object.fromEntries(p.actions.flatMap((a) => (a._tag === "CreateNetwork" ? [[a.resource, a.subnets]] : [])))

  it("each new network gets its own, none overlapping the engine's networks or each other", () => {
    const w = emptyWorld()
    w.networks.push({ ...network("someone-elses"), subnets: [{ subnet: "10.200.0.0/27", gateway: undefined }] })
    const p = plan([bottle("a"), bottle("b")], observed(w), withPool("10.200.0.0/25"))
    const got = subnetsOf(p)
    const firsts = Object.values(got).map((l) => cidr(l[0]!))
    expect(firsts).toHaveLength(4)
    for (const [i, c] of firsts.entries()) {
      expect(overlaps(c, cidr("10.200.0.0/27"))).toBe(false)
      expect(firsts.filter((o, j) => j !== i && overlaps(o, c))).toEqual([])
    }
  })

  it("a bottle that cannot get every network it needs is blocked whole; the others go on", () => {
    // Two /28s: one bottle's two networks fit, the second bottle's do not.
    const p = plan([bottle("a"), bottle("b")], observed(emptyWorld()), withPool("10.200.0.0/27"))
    const blocked = p.actions.filter((a) => a._tag === "Blocked")
    expect(blocked.map((a) => [a.bottle, a._tag === "Blocked" ? a.rule : ""])).toEqual([["b", "subnet pool full"]])
    expect(p.actions.filter((a) => a.bottle === "b" && a._tag !== "Blocked")).toEqual([])
    expect(p.actions.filter((a) => a._tag === "CreateNetwork").map((a) => a.resource)).toEqual(["claude-bottle-a_internal", "claude-bottle-a_egress"])
  })

  it("a network kept as it is keeps its subnet; without a pool the Engine picks", () => {
    expect(Object.values(subnetsOf(plan([bottle("a")], observed(emptyWorld()), options())))).toEqual([[], []])
  })
})

describe("on Podman", () => {
  const podman = (engine: object) => {
    const o = observed(emptyWorld())
    return { ...o, docker: o.docker._tag === "Ok" ? { ...o.docker, value: { ...o.docker.value, engine: { kind: "podman" as const, version: "4.3.1", ...engine } } } : o.docker }
  }
  const withPool = { ...options(), subnetPool: [cidr("10.200.0.0/24")] }

  it("the internal network is made through Podman's own API without DNS, the proxy pinned to its last address, the agent pointed at it", () => {
    const p = plan([bottle("a")], podman({ networkBackend: "netavark", rootless: false }), withPool)
    const net = p.actions.find((a) => a._tag === "CreateNetwork" && a.resource === "claude-bottle-a_internal")
    const subnet = net?._tag === "CreateNetwork" ? net.subnets : []
    expect(subnet).toHaveLength(1)
    expect(net?._tag === "CreateNetwork" ? net.spec.podman : undefined).toMatchObject({ internal: true, dns_enabled: false, ipv6_enabled: false })
    const ip = lastHost(cidr(subnet[0]!))
    const egress = p.actions.find((a) => a._tag === "CreateContainer" && a.resource === "claude-bottle-a-egress-1")
    const agent = p.actions.find((a) => a._tag === "CreateContainer" && a.resource === "claude-bottle-a-agent-1")
    expect(egress?._tag === "CreateContainer" ? egress.spec.body.NetworkingConfig?.EndpointsConfig?.["claude-bottle-a_internal"] : undefined).toMatchObject({ IPAMConfig: { IPv4Address: ip } })
    expect(agent?._tag === "CreateContainer" ? agent.spec.body.HostConfig : undefined).toMatchObject({
      ExtraHosts: [`egress:${ip}`, "host.containers.internal:127.0.0.1"],
      Sysctls: { "net.ipv6.conf.all.disable_ipv6": "1" }
    })
  })

  it.each([
    ["the CNI backend", { networkBackend: "cni", rootless: false }],
    ["rootless", { networkBackend: "netavark", rootless: true }]
  ])("is refused with %s, saying why", (_what, engine) => {
    const p = plan([bottle("a")], podman(engine), withPool)
    expect(p.actions.filter((a) => a._tag !== "Blocked")).toEqual([])
    const b = p.actions.find((a) => a._tag === "Blocked")
    expect(b?._tag === "Blocked" ? `${b.rule}: ${b.cause}` : "").toMatch(/^engine not supported: Podman 4\.3\.1 .*rootful Podman with netavark/)
  })
})
