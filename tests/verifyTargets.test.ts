/**
 * What verify asks its probe to find unreachable, from what the Engine says
 * of the bottle's networks and the default bridge: each gateway named, and
 * the default bridge's also when the Engine leaves it out of its answer
 * (Docker 20.10 does for the bridge it made on its first start): the
 * subnet's first host, where the host is. A network of bottle's own that
 * names no gateway has none.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { DockerEngine } from "../src/observers/DockerEngine.js"
import { verifyFence } from "../src/reconcilers/verify.js"
import { makeNames } from "../src/resources/names.js"

/** An Engine that knows two networks and runs a probe that finds everything in order; it records what the probe was given. */
const engine = (networks: ReadonlyArray<{ Name: string; IPAM: { Config: ReadonlyArray<{ Subnet?: string; Gateway?: string }> } }>) => {
  const inputs: Array<{ hostTargets: ReadonlyArray<{ host: string; port: number }> }> = []
  const impl = {
    listNetworks: () => Effect.succeed(networks.map((n, i) => ({ Id: `n${i}`, ...n }))),
    createContainer: (_name: string, body: { Cmd: ReadonlyArray<string> }) => {
      inputs.push(JSON.parse(body.Cmd[0]!))
      return Effect.succeed("probe-id")
    },
    startContainer: () => Effect.void,
    waitContainer: () => Effect.succeed(0),
    containerOutput: () => Effect.succeed({ stdout: JSON.stringify({ properties: [{ name: "host and gateways unreachable", ok: true, detail: "none answered" }] }), stderr: "" }),
    removeContainer: () => Effect.void
  }
  return { inputs, layer: Effect.provideService(DockerEngine, impl as never) }
}

const spec = { bottle: "b", target: "claude-bottle-b-agent-1", proxy: undefined, networks: ["claude-bottle-b_internal"], dnsNames: [], sidecars: [], proxyImage: undefined, stateDir: "/nonexistent" }
const opts = { names: makeNames("claude-bottle"), bottle: "b", image: "probe:1", target: "claude-bottle-b-agent-1" }

describe("verify's host targets", () => {
  it.effect("include each network's gateway, and the default bridge's first host where the Engine names no gateway", () =>
    Effect.gen(function* () {
      const { inputs, layer } = engine([
        { Name: "claude-bottle-b_internal", IPAM: { Config: [{ Subnet: "198.18.0.16/28", Gateway: "198.18.0.30" }] } },
        { Name: "bridge", IPAM: { Config: [{ Subnet: "172.17.0.0/16" }] } }
      ])
      yield* verifyFence(opts, spec, false).pipe(layer)
      const hosts = new Set(inputs[0]!.hostTargets.map((t) => t.host))
      expect(hosts.has("198.18.0.30")).toBe(true)
      expect(hosts.has("172.17.0.1")).toBe(true)
    }))

  it.effect("take no address for a gateway of bottle's own network that names none: there is none, and a container may hold it", () =>
    Effect.gen(function* () {
      const { inputs, layer } = engine([
        { Name: "claude-bottle-b_internal", IPAM: { Config: [{ Subnet: "198.18.0.32/28" }] } },
        { Name: "bridge", IPAM: { Config: [{ Subnet: "172.17.0.0/16", Gateway: "172.17.0.1" }] } }
      ])
      yield* verifyFence(opts, spec, false).pipe(layer)
      const hosts = inputs[0]!.hostTargets.map((t) => t.host)
      expect(hosts).toContain("172.17.0.1")
      expect(hosts.filter((h) => h.startsWith("198.18."))).toEqual([])
    }))

  it.effect("skip a subnet that is not IPv4, or too small to have a first host, rather than guess", () =>
    Effect.gen(function* () {
      const { inputs, layer } = engine([{ Name: "bridge", IPAM: { Config: [{ Subnet: "fd00::/64" }, { Subnet: "10.9.9.9/32" }] } }])
      yield* verifyFence(opts, spec, false).pipe(layer)
      expect(new Set(inputs[0]!.hostTargets.map((t) => t.host))).toEqual(new Set(["host.docker.internal", "host.containers.internal"]))
    }))
})
