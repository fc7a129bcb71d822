/**
 * `bottle verify`'s probe on a cluster: a pod fenced as the bottle's agent is
 * (src/resources/realiseKubernetes.ts, kubeProbePod) runs the same probe
 * script as on docker, in its cluster mode, and prints its verdict to its
 * log. The pod is removed after, whatever happened; one left by a run cut off
 * is a member of the set, reaped by the next apply or prune.
 */
import { Writable } from "node:stream"
import { Duration, Effect, Schedule } from "effect"
import { KubeApi, POD, refOf, type KubeError } from "../observers/KubeApi.js"
import { kubeLogs } from "../observers/KubeStreams.js"
import type { KubeTarget } from "../resources/kubeconfig.js"
import { PROBE_SCRIPT, type ProbeInput, type ProbeProperty } from "../resources/probeScript.js"
import { dnsNamesFor, EGRESS_PORT } from "../resources/realise.js"
import { kubeNames, kubeProbePod } from "../resources/realiseKubernetes.js"
import { REFUSED_HOST } from "./verify.js"

const SERVICE = refOf("v1", "Service")!

/** What must not answer from inside the fence: the cloud's metadata service (and the cluster's API, which the probe finds itself). */
const CLUSTER_TARGETS = [{ host: "169.254.169.254", port: 80 }]

export const kubeProbe = (
  target: KubeTarget,
  b: { readonly name: string; readonly set: string },
  ctx: { readonly namespace: string; readonly prefix: string; readonly proxyUser: string },
  image: string,
  hasProxy: boolean
): Effect.Effect<ReadonlyArray<ProbeProperty>, KubeError | string, KubeApi> =>
  Effect.gen(function* () {
    const api = yield* KubeApi
    // The proxy by its Service's address, as the agent reaches it: inside the fence no name resolves.
    const service = hasProxy ? yield* api.get(SERVICE, ctx.namespace, kubeNames(b.name).egress) : undefined
    const clusterIp = (service?.["spec"] as { clusterIP?: string } | undefined)?.clusterIP
    if (hasProxy && (clusterIp === undefined || clusterIp === "" || clusterIp === "None")) return yield* Effect.fail(`the proxy's Service ${kubeNames(b.name).egress} has no address`)
    const input: ProbeInput = {
      mode: "verify",
      cluster: true,
      proxy: hasProxy ? { host: clusterIp!, port: EGRESS_PORT } : null,
      refusedHost: REFUSED_HOST,
      hostTargets: CLUSTER_TARGETS,
      publicAddresses: ["1.1.1.1", "8.8.8.8"],
      dnsNames: dnsNamesFor([]),
      sidecars: [],
      timeout: 2
    }
    const base = kubeProbePod(b, ctx, image, ["python3", "-c", PROBE_SCRIPT, JSON.stringify(input)])
    const pod = { ...base, metadata: { ...base.metadata, name: `${base.metadata.name}-${Math.random().toString(36).slice(2, 8)}` } }
    const ns = ctx.namespace
    const made = yield* api.apply(pod)
    const run = Effect.gen(function* () {
      const phase = yield* api.get(POD, ns, pod.metadata.name).pipe(
        Effect.map((p) => (p["status"] as { phase?: string } | undefined)?.phase ?? "Pending"),
        Effect.filterOrFail((ph) => ph === "Succeeded" || ph === "Failed", (ph) => `probe pod ${pod.metadata.name} is ${ph}`),
        Effect.retry({ while: (e) => typeof e === "string", schedule: Schedule.spaced(Duration.seconds(1)), times: 120 })
      )
      const chunks: Array<Buffer> = []
      yield* kubeLogs(target, { namespace: ns, name: pod.metadata.name, container: "probe" }, { follow: false }, new Writable({ write: (c: Buffer, _e, done) => { chunks.push(c); done() } }))
      const line = Buffer.concat(chunks).toString("utf8").trim().split("\n").reverse().find((l) => l.startsWith("{"))
      let parsed: { properties?: ReadonlyArray<ProbeProperty> } | undefined
      try {
        parsed = line !== undefined ? JSON.parse(line) : undefined
      } catch {
        parsed = undefined
      }
      if (!Array.isArray(parsed?.properties)) return yield* Effect.fail(`the probe pod ${pod.metadata.name} ended ${phase} without a verdict (is python3 in ${image}? BOTTLE_PROBE_IMAGE names another)`)
      return parsed.properties
    })
    return yield* run.pipe(Effect.ensuring(api.remove(POD, ns, pod.metadata.name, made.metadata.uid).pipe(Effect.ignore)))
  })
