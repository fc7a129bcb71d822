/**
 * Which bottles `bottle verify` probes, read from an observation alone (no
 * spec needed): each running docker agent of this install, with its proxy
 * and networks as they are. Pure.
 */
import { Bottle as BL, Compose, MANAGED_BY } from "../resources/labels.js"
import type { Names } from "../resources/names.js"
import { ownership } from "../resources/ownership.js"
import type { ObservedContainer, Observed } from "../resources/observed.js"
import { dnsNamesFor, EGRESS_ALIAS, EGRESS_PORT, sidecarsOf, type VerifySpec } from "../resources/realise.js"

export interface VerifyTargets {
  readonly targets: ReadonlyArray<VerifySpec>
  /** Named, but no bottle of that name is here. */
  readonly missing: ReadonlyArray<string>
  /** Named (or found) but its agent is not running: nothing to probe. */
  readonly notRunning: ReadonlyArray<string>
  /** Bottles whose backend has no network namespace to probe from outside (smolmachines: the VM's fence is smolvm's). */
  readonly unsupported: ReadonlyArray<string>
}

const ours = (c: ObservedContainer, names: Names) => c.labels[BL.managedBy] === MANAGED_BY && ownership(names).owns(c.name, c.labels)

export const verifyTargets = (o: Observed, names: Names, stateRoot: string, requested: ReadonlyArray<string>): VerifyTargets => {
  const containers = o.docker._tag === "Ok" ? o.docker.value.containers.filter((c) => ours(c, names)) : []
  const machines = o.smolvm._tag === "Ok" ? o.smolvm.value.machines.filter((m) => m.labels[BL.managedBy] === MANAGED_BY && ownership(names).owns(m.name, m.labels)) : []
  const agents = new Map(containers.filter((c) => c.labels[Compose.service] === "agent" && c.name === names.container(c.labels[BL.bottle] ?? "", "agent")).map((c) => [c.labels[BL.bottle]!, c]))
  const vms = new Set(machines.map((m) => m.labels[BL.bottle] ?? ""))
  const wanted = requested.length > 0 ? [...new Set(requested)] : [...new Set([...agents.keys(), ...vms])].sort()
  const targets: Array<VerifySpec> = []
  const missing: Array<string> = []
  const notRunning: Array<string> = []
  const unsupported: Array<string> = []
  for (const b of wanted) {
    const agent = agents.get(b)
    if (agent === undefined) {
      if (vms.has(b)) unsupported.push(b)
      else missing.push(b)
      continue
    }
    if (agent.state !== "running") { notRunning.push(b); continue }
    const egress = containers.find((c) => c.name === names.container(b, "egress"))
    const networks = (o.docker._tag === "Ok" ? o.docker.value.networks : [])
      .filter((n) => n.labels[BL.managedBy] === MANAGED_BY && n.labels[BL.bottle] === b && ownership(names).owns(n.name, n.labels))
      .map((n) => n.name)
      .sort()
    targets.push({
      bottle: b,
      target: agent.name,
      // A bottle made with a proxy must still answer through it; one without has no way out at all.
      proxy: egress !== undefined ? { host: EGRESS_ALIAS, port: EGRESS_PORT } : undefined,
      networks,
      dnsNames: dnsNamesFor([]),
      // The sidecars it runs must answer the agent.
      sidecars: sidecarsOf({
        git: containers.some((c) => c.name === names.container(b, "git")) ? true : undefined,
        supervise: containers.some((c) => c.name === names.container(b, "supervise")) ? true : undefined
      }),
      proxyImage: egress?.image,
      stateDir: `${stateRoot}/${b}`
    })
  }
  return { targets, missing, notRunning, unsupported }
}
