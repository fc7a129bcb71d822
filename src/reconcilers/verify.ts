/**
 * Proving a fence: runs the probe (src/resources/probeScript.ts) in a
 * short-lived container that shares the target's network namespace, and
 * reads its verdict. Used by `apply` (readiness of a proxy before its agent
 * starts; verification once a bottle is up) and by `bottle verify`.
 */
import { createServer, type Server } from "node:net"
import { networkInterfaces } from "node:os"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { DockerEngine, type DockerError } from "../observers/DockerEngine.js"
import { Bottle as BL, Compose, MANAGED_BY } from "../resources/labels.js"
import type { Names } from "../resources/names.js"
import { PROBE_SCRIPT, PUBLIC_ADDRESSES, REFUSED_HOST, type ProbeInput, type ProbeProperty } from "../resources/probeScript.js"
import type { VerifySpec } from "../resources/realise.js"
import { firstHost, parseCidr } from "../resources/subnets.js"

/** The probe could not run or gave no verdict (not the same as a property failing). */
export class ProbeError extends Data.TaggedError("ProbeError")<{ readonly target: string; readonly detail: string }> {
  override get message(): string {
    return `probe of ${this.target}: ${this.detail}`
  }
}

export interface ProbeOptions {
  readonly names: Names
  readonly bottle: string
  /** An image with python3 in it: the bottle's mitmproxy image, or the probe image setting. */
  readonly image: string
  /** The container whose network namespace is probed. */
  readonly target: string
}

/** A public address per family: a route to it is looked up, nothing is sent. */
export { REFUSED_HOST }

/** Runs the probe script with `input` in the target's network namespace and returns what it printed, parsed. */
const runProbe = (opts: ProbeOptions, input: unknown, bound: Duration.DurationInput) =>
  Effect.gen(function* () {
    const docker = yield* DockerEngine
    const name = `${opts.names.project(opts.bottle)}-probe-${Math.random().toString(36).slice(2, 10)}`
    const body = {
      Image: opts.image,
      Entrypoint: ["python3", "-c", PROBE_SCRIPT],
      Cmd: [JSON.stringify(input)],
      User: "65534:65534",
      Labels: {
        // A probe left behind by a killed run is a stray service of its bottle's project: the next apply removes it.
        [Compose.project]: opts.names.project(opts.bottle),
        [Compose.service]: "probe",
        [BL.managedBy]: MANAGED_BY,
        [BL.bottle]: opts.bottle
      },
      HostConfig: {
        NetworkMode: `container:${opts.target}`,
        CapDrop: ["ALL"],
        SecurityOpt: ["no-new-privileges:true"],
        ReadonlyRootfs: true,
        PidsLimit: 64,
        Memory: 64 * 1024 ** 2
      }
    }
    const probeFailed = (detail: string) => new ProbeError({ target: opts.target, detail })
    const id = yield* docker.createContainer(name, body)
    return yield* Effect.gen(function* () {
      yield* docker.startContainer(id)
      const code = yield* docker.waitContainer(id, bound)
      const out = yield* docker.containerOutput(id, 64 * 1024)
      const line = out.stdout.trim().split("\n").pop() ?? ""
      try {
        return JSON.parse(line) as unknown
      } catch {
        return yield* Effect.fail(probeFailed(`no verdict (exit ${code}): ${(out.stderr.trim().split("\n").pop() ?? "").slice(0, 300) || "no output"}`))
      }
    }).pipe(Effect.ensuring(docker.removeContainer(id).pipe(Effect.ignore)))
  }).pipe(Effect.catchTag("DockerError", (e: DockerError) => Effect.fail(new ProbeError({ target: opts.target, detail: e.message }))))

/** A listener on every host address for the length of a probe: a connection to it is the host reached from inside. */
const withHostListener = <A, E, R>(use: (port: number, hits: () => ReadonlyArray<string>) => Effect.Effect<A, E, R>) =>
  Effect.acquireUseRelease(
    Effect.async<{ server: Server; hits: Array<string> }>((resume) => {
      const hits: Array<string> = []
      const server = createServer((s) => {
        hits.push(s.remoteAddress ?? "?")
        s.destroy()
      })
      server.on("error", () => resume(Effect.succeed({ server, hits })))
      server.listen(0, "0.0.0.0", () => resume(Effect.succeed({ server, hits })))
    }),
    ({ server, hits }) => {
      const a = server.address()
      return use(typeof a === "object" && a !== null ? a.port : 0, () => hits)
    },
    ({ server }) => Effect.sync(() => server.close())
  )

/** The host's own IPv4 addresses (docker0 and every bridge among them). */
const hostAddresses = (): ReadonlyArray<string> =>
  Object.values(networkInterfaces()).flatMap((list) => (list ?? []).filter((i) => i.family === "IPv4" && !i.internal).map((i) => i.address))

export interface Verdict {
  readonly ok: boolean
  readonly properties: ReadonlyArray<ProbeProperty>
  readonly at: string
}

/**
 * Proves a bottle's fence from inside its agent's network namespace. With a
 * local engine, bottle listens on every host address while the probe runs:
 * the probe must reach none of them, nor any gateway of the bottle's
 * networks or Docker's default bridge.
 */
export const verifyFence = (opts: ProbeOptions, spec: VerifySpec, local: boolean) =>
  Effect.gen(function* () {
    const docker = yield* DockerEngine
    const nets = yield* docker.listNetworks({ name: [...spec.networks, "bridge"] }).pipe(
      Effect.mapError((e) => new ProbeError({ target: opts.target, detail: e.message }))
    )
    // Docker 20.10 leaves the default bridge's gateway out of what it tells when it made the bridge itself (its first
    // start); the host is on that bridge all the same, at the subnet's first address. A network of bottle's own that
    // names no gateway has none (an internal one: the host keeps no address there, and a container may hold that one).
    const gatewayOf = (network: string) => (c: { readonly Subnet?: string | undefined; readonly Gateway?: string | undefined }): ReadonlyArray<string> => {
      if (c.Gateway !== undefined && c.Gateway !== "" && c.Gateway !== "<nil>") return [c.Gateway]
      const cidr = network === "bridge" && c.Subnet !== undefined ? parseCidr(c.Subnet) : "not the default bridge"
      return typeof cidr === "string" || cidr.bits > 30 ? [] : [firstHost(cidr)]
    }
    const gateways = nets
      .filter((n) => [...spec.networks, "bridge"].includes(n.Name))
      .flatMap((n) => (n.IPAM?.Config ?? []).flatMap(gatewayOf(n.Name)))
    return yield* withHostListener((port, hits) =>
      Effect.gen(function* () {
        const ports = local && port > 0 ? [port] : [22, 80, 443, 2375]
        const hosts = [...new Set([...gateways, ...(local ? hostAddresses() : []), "host.docker.internal", "host.containers.internal"])]
        const input: ProbeInput = {
          mode: "verify",
          proxy: spec.proxy ?? null,
          refusedHost: REFUSED_HOST,
          hostTargets: hosts.flatMap((host) => ports.map((p) => ({ host, port: p }))),
          publicAddresses: PUBLIC_ADDRESSES,
          dnsNames: spec.dnsNames,
          sidecars: spec.sidecars,
          timeout: 1
        }
        const r = (yield* runProbe(opts, input, Duration.seconds(30))) as { properties?: ReadonlyArray<ProbeProperty> }
        if (!Array.isArray(r.properties)) return yield* Effect.fail(new ProbeError({ target: opts.target, detail: "the probe gave no properties" }))
        const heard = hits()
        const properties = heard.length > 0
          ? [...r.properties, { name: "host listener not reached", ok: false, detail: `bottle's listener on the host was reached from ${[...new Set(heard)].join(", ")}` }]
          : r.properties
        return { ok: properties.every((p) => p.ok), properties, at: new Date().toISOString() } satisfies Verdict
      })
    )
  })

/** One line naming what failed (or that everything held). */
export const verdictText = (v: Verdict): string =>
  v.ok
    ? `fence holds (${v.properties.length} properties)`
    : `fence broken: ${v.properties.filter((p) => !p.ok).map((p) => `${p.name}: ${p.detail}`).join("; ")}`
