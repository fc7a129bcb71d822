/**
 * `bottle verify`'s probe on a cluster: a pod fenced as the bottle's agent is
 * (src/resources/realiseKubernetes.ts, kubeProbePod: the same probe as the
 * agent's gate, in verify mode) prints its verdict to its log. The pod is
 * removed after, whatever happened; one left by a run cut off is a member of
 * the set, reaped by the next apply or prune.
 */
import { Writable } from "node:stream"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import { KubeApi, POD, type KubeError } from "../observers/KubeApi.js"
import { kubeLogs } from "../observers/KubeStreams.js"
import type { KubeTarget } from "../resources/kubeconfig.js"
import type { ProbeProperty } from "../resources/probeScript.js"
import { kubeProbePod } from "../resources/realiseKubernetes.js"

export const kubeProbe = (
  target: KubeTarget,
  b: Parameters<typeof kubeProbePod>[0],
  ctx: Parameters<typeof kubeProbePod>[1]
): Effect.Effect<ReadonlyArray<ProbeProperty>, KubeError | string, KubeApi> =>
  Effect.gen(function* () {
    const api = yield* KubeApi
    const pod = kubeProbePod(b, ctx, Math.random().toString(36).slice(2, 8))
    const ns = ctx.namespace
    const name = pod.metadata.name
    const made = yield* api.apply(pod)
    const run = Effect.gen(function* () {
      const phase = yield* api.get(POD, ns, name).pipe(
        Effect.map((p) => (p["status"] as { phase?: string } | undefined)?.phase ?? "Pending"),
        Effect.filterOrFail((ph) => ph === "Succeeded" || ph === "Failed", (ph) => `probe pod ${name} is ${ph}`),
        Effect.retry({ while: (e) => typeof e === "string", schedule: Schedule.spaced(Duration.seconds(1)), times: 120 })
      )
      const chunks: Array<Buffer> = []
      yield* kubeLogs(target, { namespace: ns, name, container: "probe" }, { follow: false }, new Writable({ write: (c: Buffer, _e, done) => { chunks.push(c); done() } }))
      const line = Buffer.concat(chunks).toString("utf8").trim().split("\n").reverse().find((l) => l.startsWith("{"))
      let parsed: { properties?: ReadonlyArray<ProbeProperty> } | undefined
      try {
        parsed = line !== undefined ? JSON.parse(line) : undefined
      } catch {
        parsed = undefined
      }
      const image = (pod["spec"] as { containers: ReadonlyArray<{ image: string }> }).containers[0]!.image
      if (!Array.isArray(parsed?.properties)) return yield* Effect.fail(`the probe pod ${name} ended ${phase} without a verdict (is python3 in ${image}? BOTTLE_PROBE_IMAGE names another)`)
      return parsed.properties
    })
    return yield* run.pipe(Effect.ensuring(api.remove(POD, ns, name, made.metadata.uid).pipe(Effect.ignore)))
  })
