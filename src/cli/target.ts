/**
 * Which live thing `bottle exec` and `bottle logs` talk to: a service of a
 * bottle of this install, found in one observation. Pure.
 */
import { Bottle as BL, MANAGED_BY } from "../resources/labels.js"
import type { Names } from "../resources/names.js"
import type { Observed } from "../resources/observed.js"
import { ownership } from "../resources/ownership.js"
import { ROLE_LABEL, WORKLOADS } from "../resources/realiseKubernetes.js"

export type Service = "agent" | "egress" | "git" | "supervise"

export type Target =
  | { readonly _tag: "Container"; readonly name: string; readonly running: boolean; readonly backend: "docker" | "smolmachines" }
  | { readonly _tag: "Machine"; readonly name: string; readonly running: boolean }
  /** A bottle's workload on Kubernetes: its pod is found when it is used (it may be rescheduled). */
  | { readonly _tag: "Pod"; readonly namespace: string; readonly bottle: string; readonly role: "agent" | "egress"; readonly name: string; readonly running: boolean }
  | { readonly _tag: "Missing"; readonly why: string }

/** Whether a workload reports a ready replica (a Sandbox: its Ready condition). */
export const workloadReady = (body: Readonly<Record<string, unknown>>) => {
  const status = body["status"] as { readyReplicas?: unknown; conditions?: ReadonlyArray<{ type?: unknown; status?: unknown }> } | undefined
  return (typeof status?.readyReplicas === "number" && status.readyReplicas > 0) ||
    (status?.conditions ?? []).some((c) => c.type === "Ready" && c.status === "True")
}

export const findTarget = (o: Observed, names: Names, bottle: string, service: Service): Target => {
  if (o.kubernetes?._tag === "Ok") {
    const workloads = o.kubernetes.value.objects.filter((x) => x.labels[BL.bottle] === bottle && x.labels[ROLE_LABEL] !== undefined && WORKLOADS.has(x.kind))
    if (workloads.length > 0) {
      const w = workloads.find((x) => x.labels[ROLE_LABEL] === service)
      if (w === undefined) return { _tag: "Missing", why: `bottle '${bottle}' has no ${service}${service === "egress" ? " (its allow list is empty: no proxy)" : " (on Kubernetes a bottle runs its agent and its proxy)"}` }
      return { _tag: "Pod", namespace: w.namespace, bottle, role: service === "egress" ? "egress" : "agent", name: `${w.kind}/${w.name}`, running: workloadReady(w.body) }
    }
  }
  const own = ownership(names)
  const containers = o.docker._tag === "Ok" ? o.docker.value.containers.filter((c) => own.owns(c.name, c.labels) && c.labels[BL.managedBy] === MANAGED_BY) : []
  const machines = o.smolvm._tag === "Ok" ? o.smolvm.value.machines.filter((m) => own.owns(m.name, m.labels) && m.labels[BL.managedBy] === MANAGED_BY) : []
  const machine = machines.find((m) => m.name === names.machine(bottle))
  if (machine !== undefined) {
    if (service === "agent") return { _tag: "Machine", name: machine.name, running: machine.state === "running" }
    const bundle = containers.find((c) => c.name === names.bundleContainer(bottle))
    return bundle !== undefined
      ? { _tag: "Container", name: bundle.name, running: bundle.state === "running", backend: "smolmachines" }
      : { _tag: "Missing", why: `bottle '${bottle}' has no ${service}${service === "egress" ? " (its allow list is empty: no proxy)" : " (smolmachines bottles run only the egress proxy)"}` }
  }
  const c = containers.find((x) => x.name === names.container(bottle, service))
  if (c !== undefined) return { _tag: "Container", name: c.name, running: c.state === "running", backend: "docker" }
  const exists = containers.some((x) => x.labels[BL.bottle] === bottle)
  const missing: Record<Service, string> = { agent: "", egress: " (its allow list is empty: no proxy)", git: " (its spec declares no git remotes)", supervise: " (its spec does not set supervise: true)" }
  if (exists) return { _tag: "Missing", why: `bottle '${bottle}' has no ${service}${missing[service]}` }
  const where = [
    o.docker._tag === "Failed" ? `the Docker Engine could not be asked (${o.docker.error})` : "",
    o.smolvm._tag === "Failed" ? `smolvm could not be asked (${o.smolvm.error})` : "",
    o.kubernetes?._tag === "Failed" ? `Kubernetes could not be asked (${o.kubernetes.error})` : ""
  ].filter(Boolean)
  return { _tag: "Missing", why: `no bottle named '${bottle}' runs here${where.length > 0 ? `, as far as can be told: ${where.join("; ")}` : ""}` }
}
