/** `bottle verify [NAME…] [-o json]`: probe each bottle's fence from inside its network namespace. Exit 0 holds, 1 a property failed, 2 error. */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { KubeApi, POD, refOf } from "../observers/KubeApi.js"
import { asObserved } from "../observers/kubeObserver.js"
import { KUBE_PROXY_USER } from "../reconcilers/backends/kubernetes.js"
import { probeImageFor } from "../resources/probeScript.js"
import { kubeProbe } from "../reconcilers/kubeProbe.js"
import { kubeFence, ENFORCEMENT_WARNING } from "../reconcilers/kubeVerify.js"
import { Bottle as BL } from "../resources/labels.js"
import { ROLE_LABEL, WORKLOADS } from "../resources/realiseKubernetes.js"
import { withLock } from "../reconcilers/lock.js"
import { writeVerdict } from "../reconcilers/runAction.js"
import { verifyFence, type Verdict } from "../reconcilers/verify.js"
import { verifyTargets } from "../reconcilers/verifyPlan.js"
import { exitWith } from "./exit.js"
import { observeEverywhere } from "./kube.js"
import { withEngines } from "./engines.js"
import type * as O from "./options.js"
import { err, json, out, style } from "./output.js"
import { runnerOptions } from "./pipeline.js"
import { SettingsTag } from "./settings.js"
import { workloadReady } from "./target.js"

const NETWORK_POLICY = refOf("networking.k8s.io/v1", "NetworkPolicy")!

/** The labels of a bottle's agent pods as they run (controllers add their own). */
const agentPods = (namespace: string, bottle: string) =>
  Effect.gen(function* () {
    const api = yield* KubeApi
    const pods = yield* api.list(POD, namespace, `${BL.bottle}=${bottle},${ROLE_LABEL}=agent`)
    return pods.map((p) => p.metadata.labels ?? {})
  })

/** Every NetworkPolicy of a namespace, bottle's or not (policies add up). */
const namespacePolicies = (namespace: string) =>
  Effect.gen(function* () {
    const api = yield* KubeApi
    const items = yield* api.list(NETWORK_POLICY, namespace, "")
    return items.map((o) => asObserved(o, NETWORK_POLICY, namespace))
  })

export const verify = (o: O.Parsed<typeof O.verify>) =>
  Effect.gen(function* () {
    const settings = yield* SettingsTag
    const opts = runnerOptions(settings)
    // Probes are containers bottle makes: one command at a time changes the engine.
    return yield* withLock(settings.home, "bottle verify", settings.lockWaitSeconds, (m) => err(`warning: ${m}`))(Effect.gen(function* () {
      const { observed, access } = yield* observeEverywhere(settings, o.context)
      if (observed.docker._tag === "Failed") {
        err(`error: ${observed.docker.error}`)
        return yield* Effect.fail(exitWith(2))
      }
      // Kubernetes bottles are proven from what the API reports (src/reconcilers/kubeVerify.ts); the rest by a probe.
      const kubeObjects = observed.kubernetes?._tag === "Ok" ? observed.kubernetes.value.objects : []
      const onKube = [...new Set(kubeObjects.filter((x) => x.labels[ROLE_LABEL] === "agent" && x.labels[BL.bottle] !== undefined).map((x) => x.labels[BL.bottle]!))].sort()
      const agentOf = (b: string) => kubeObjects.find((x) => x.labels[BL.bottle] === b && x.labels[ROLE_LABEL] === "agent" && WORKLOADS.has(x.kind))!
      // A bottle whose agent is not running is not probed (as on docker): said so, not called broken.
      const kubeNamed = o.bottles.length > 0 ? onKube.filter((b) => o.bottles.includes(b)) : onKube
      const kubeNotRunning = kubeNamed.filter((b) => !workloadReady(agentOf(b).body))
      const kubeWanted = kubeNamed.filter((b) => !kubeNotRunning.includes(b))
      const kubeBlind = observed.kubernetes?._tag === "Failed" ? observed.kubernetes.error : undefined
      if (kubeBlind !== undefined) err(`error: ${kubeBlind}: its bottles could not be verified`)
      // Each namespace's policies are listed once, whatever the number of its bottles.
      const policiesOf = new Map(access._tag !== "Ready" ? [] : yield* Effect.forEach([...new Set(kubeWanted.map((b) => agentOf(b).namespace))], (ns) =>
        namespacePolicies(ns).pipe(Effect.provide(access.layer), Effect.option, Effect.map((p) => [ns, Option.getOrUndefined(p)] as const))))
      const kubeResults = yield* Effect.forEach(kubeWanted, (b) =>
        Effect.gen(function* () {
          const agent = agentOf(b)
          // The policies against the live pods' labels (controllers add their own).
          const pods = access._tag !== "Ready" ? undefined : yield* agentPods(agent.namespace, b).pipe(Effect.provide(access.layer), Effect.orElseSucceed(() => undefined))
          const fence = kubeFence(kubeObjects, b, pods === undefined ? undefined : policiesOf.get(agent.namespace), pods)
          const proxy = kubeObjects.find((x) => x.labels[BL.bottle] === b && x.labels[ROLE_LABEL] === "egress" && x.kind === "Deployment")
          const proxyImage = (proxy?.body["spec"] as { template?: { spec?: { containers?: ReadonlyArray<{ image?: string }> } } } | undefined)?.template?.spec?.containers?.[0]?.image
          // The API checks first: a pod is probed only inside a fence that is there.
          const probed = access._tag !== "Ready" || !fence.every((p) => p.ok)
            ? [{ name: "probed from inside", ok: false, detail: access._tag !== "Ready" ? "no cluster to probe" : "not probed: its fence is not in place" }]
            : yield* kubeProbe(access.target, { name: b, set: agent.labels[BL.set] ?? "default", proxyImage: proxy !== undefined ? proxyImage ?? opts.probeImage : undefined },
              { namespace: agent.namespace, prefix: settings.names.prefix, proxyUser: KUBE_PROXY_USER, probeImage: opts.probeImage }).pipe(
              Effect.provide(access.layer),
              Effect.catchAll((e) => Effect.succeed([{ name: "probed from inside", ok: false, detail: typeof e === "string" ? e : e.message }]))
            )
          const properties = [...fence, ...probed]
          return { bottle: b, verdict: { ok: properties.every((p) => p.ok), properties, at: new Date().toISOString() } as Verdict, error: undefined as string | undefined }
        }), { concurrency: 4 })
      yield* Effect.forEach(kubeResults, (r) => Effect.promise(() => writeVerdict(`${settings.stateRoot}/${r.bottle}`, r.verdict!).catch(() => undefined)), { discard: true })
      if (kubeResults.length > 0 && o.output !== "json") err(`warning: ${ENFORCEMENT_WARNING}`)
      const named = o.bottles.filter((b) => !onKube.includes(b))
      const t = o.bottles.length > 0 && named.length === 0
        ? { targets: [], missing: [], notRunning: [], unsupported: [] }
        : verifyTargets(observed, settings.names, settings.stateRoot, named)
      const probed = yield* Effect.forEach(t.targets, (spec) =>
        verifyFence({ names: settings.names, bottle: spec.bottle, image: probeImageFor(spec.proxyImage, opts.probeImage), target: spec.target }, spec, opts.localEngine).pipe(
          Effect.tap((v) => Effect.promise(() => writeVerdict(spec.stateDir, v).catch(() => undefined))),
          Effect.map((v): { bottle: string; verdict: Verdict | undefined; error: string | undefined } => ({ bottle: spec.bottle, verdict: v, error: undefined })),
          Effect.catchAll((e) => Effect.succeed({ bottle: spec.bottle, verdict: undefined, error: e.message }))
        ), { concurrency: "unbounded" })
      const results = [...probed, ...kubeResults]
      const s = style()
      if (o.output === "json") {
        json({
          bottles: results.map((r) => ({ name: r.bottle, ok: r.verdict?.ok ?? false, properties: r.verdict?.properties ?? [], at: r.verdict?.at ?? null, error: r.error ?? null })),
          missing: t.missing,
          notRunning: [...t.notRunning, ...kubeNotRunning],
          unsupported: t.unsupported,
          ...(kubeResults.length > 0 ? { warning: ENFORCEMENT_WARNING } : {})
        })
      } else {
        for (const r of results) {
          if (r.verdict === undefined) { out(`${s.bold(r.bottle)}: ${s.red("could not be probed")}: ${r.error}`); continue }
          out(`${s.bold(r.bottle)}: ${r.verdict.ok ? s.green("fence holds") : s.red("FENCE BROKEN")}`)
          for (const p of r.verdict.properties) out(`  ${p.ok ? s.green("ok  ") : s.red("FAIL")} ${p.name}  ${s.dim(`(${p.detail})`)}`)
        }
        for (const b of [...t.notRunning, ...kubeNotRunning]) out(`${s.bold(b)}: not running; nothing to probe`)
        for (const b of t.unsupported) out(`${s.bold(b)}: smolmachines: its fence is smolvm's --allow-cidr, not probed from outside`)
        if (results.length === 0 && t.missing.length === 0 && t.notRunning.length === 0 && kubeNotRunning.length === 0 && t.unsupported.length === 0 && kubeBlind === undefined) out("No running bottles.")
      }
      if (t.missing.length > 0) {
        err(`error: no bottle named ${t.missing.map((m) => `'${m}'`).join(", ")} here`)
        return yield* Effect.fail(exitWith(2))
      }
      if (results.some((r) => r.verdict === undefined)) return yield* Effect.fail(exitWith(2))
      // A cluster that could not be asked proves nothing about its bottles.
      if (kubeBlind !== undefined) return yield* Effect.fail(exitWith(2))
      if (results.some((r) => r.verdict?.ok === false)) return yield* Effect.fail(exitWith(1))
      // A bottle named on the command line that could not be probed is not a pass.
      if (o.bottles.some((b) => t.notRunning.includes(b) || kubeNotRunning.includes(b))) return yield* Effect.fail(exitWith(2))
    }))
  }).pipe(withEngines)
