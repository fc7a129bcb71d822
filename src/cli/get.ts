/** `bottle get [-o table|json]`: what is live, across every backend. */
import * as Effect from "effect/Effect"
import { Bottle as BL, Compose, MANAGED_BY } from "../resources/labels.js"
import { ownership } from "../resources/ownership.js"
import { ROLE_LABEL, WORKLOADS } from "../resources/realiseKubernetes.js"
import type { Observed } from "../resources/observed.js"
import type { Names } from "../resources/names.js"
import { exitWith } from "./exit.js"
import { observeEverywhere } from "./kube.js"
import { withEngines } from "./engines.js"
import type * as O from "./options.js"
import { err, json, out } from "./output.js"
import { SettingsTag } from "./settings.js"
import { workloadReady } from "./target.js"
import { byText } from "../resources/order.js"

export interface BottleRow {
  readonly backend: string
  readonly name: string
  readonly set: string
  readonly state: string
  readonly services: ReadonlyArray<string>
  readonly stateDir: "present" | "preserved" | "none"
  /** The last verification of its fence, if there was one. */
  readonly verified: { readonly ok: boolean; readonly at: string; readonly failed: ReadonlyArray<string> } | null
}

/** One row per bottle found on any backend or only as a state dir. Pure. */
export const bottleRows = (o: Observed, names: Names): ReadonlyArray<BottleRow> => {
  const rows = new Map<string, { backend: Set<string>; set: string; states: Array<string>; services: Array<string> }>()
  const row = (name: string) => {
    let r = rows.get(name)
    if (!r) rows.set(name, (r = { backend: new Set(), set: "", states: [], services: [] }))
    return r
  }
  const p = names.prefix
  const own = ownership(names)
  if (o.docker._tag === "Ok") {
    for (const c of o.docker.value.containers) {
      if (!own.owns(c.name, c.labels)) continue
      const owner = own.ownerOf(c.name, c.labels) ?? c.name.slice(p.length + 1)
      const r = row(owner)
      r.backend.add(c.labels[BL.backend] ?? (c.labels[BL.managedBy] === MANAGED_BY ? "docker" : "leftover"))
      r.set ||= c.labels[BL.set] ?? ""
      r.states.push(c.state)
      r.services.push(`${c.labels[Compose.service] ?? (c.name.startsWith(`${p}-sidecars-`) ? "sidecars" : c.name)}:${c.state}`)
    }
  }
  if (o.smolvm._tag === "Ok") {
    for (const m of o.smolvm.value.machines.filter((m) => own.owns(m.name, m.labels))) {
      const r = row(own.ownerOf(m.name, m.labels, true)!)
      r.backend.add("smolmachines")
      r.set ||= m.labels[BL.set] ?? ""
      r.states.push(m.state)
      r.services.push(`vm:${m.state}`)
    }
  }
  if (o.kubernetes?._tag === "Ok") {
    // A bottle's workloads: its agent and its proxy, each running once a replica is ready.
    for (const w of o.kubernetes.value.objects.filter((x) => WORKLOADS.has(x.kind) && x.labels[BL.bottle] !== undefined && x.labels[ROLE_LABEL] !== undefined)) {
      const r = row(w.labels[BL.bottle]!)
      r.backend.add("kubernetes")
      r.set ||= w.labels[BL.set] ?? ""
      const state = w.deleting ? "deleting" : workloadReady(w.body) ? "running" : "pending"
      r.states.push(state)
      r.services.push(`${w.labels[ROLE_LABEL]}:${state}`)
    }
  }
  const dirs = o.state._tag === "Ok" ? o.state.value.dirs : []
  for (const d of dirs) {
    const r = row(d.name)
    r.set ||= d.metadata?.set ?? ""
    if (r.backend.size === 0) r.backend.add(d.metadata?.backend ?? "-")
  }
  return [...rows.entries()].sort(([a], [b]) => byText(a, b)).map(([name, r]) => {
    const d = dirs.find((x) => x.name === name)
    const state = r.states.length === 0 ? "state only" : r.states.every((s) => s === "running") ? "running" : r.states.some((s) => s === "running") ? "degraded" : "stopped"
    return {
      backend: [...r.backend].sort().join("+"),
      name,
      set: r.set || "-",
      state,
      services: r.services.sort(),
      stateDir: d === undefined ? "none" : d.preserve ? "preserved" : "present",
      verified: d?.verdict ?? null
    }
  })
}

/** `ok 3m ago`, `FAILED 1h ago (proxy answers)`, or `-`. */
export const verifiedText = (v: BottleRow["verified"], now = Date.now()): string => {
  if (v === null) return "-"
  const secs = Math.max(0, Math.round((now - Date.parse(v.at)) / 1000))
  const ago = Number.isNaN(secs) ? "" : secs < 60 ? ` ${secs}s ago` : secs < 3600 ? ` ${Math.round(secs / 60)}m ago` : secs < 86400 ? ` ${Math.round(secs / 3600)}h ago` : ` ${Math.round(secs / 86400)}d ago`
  return v.ok ? `ok${ago}` : `FAILED${ago} (${v.failed.join(", ")})`
}

const table = (rows: ReadonlyArray<ReadonlyArray<string>>) => {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)))
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  ")).join("\n")
}

export const get = (o: O.Parsed<typeof O.get>) =>
  Effect.gen(function* () {
    const settings = yield* SettingsTag
    const { observed } = yield* observeEverywhere(settings, o.context)
    const rows = bottleRows(observed, settings.names)
    const failed = [observed.docker, observed.smolvm, observed.state, ...(observed.kubernetes !== undefined ? [observed.kubernetes] : [])].flatMap((s) => (s._tag === "Failed" ? [`${s.source}: ${s.error}`] : []))
    if (o.output === "json") json({ bottles: rows, failed })
    else {
      // "No bottles" only when every observer answered: a failed one proves nothing.
      if (rows.length === 0 && failed.length === 0) out("No bottles.")
      else if (rows.length > 0) {
        out(table([["BACKEND", "NAME", "SET", "STATE", "STATE DIR", "VERIFIED", "SERVICES"], ...rows.map((r) => [r.backend, r.name, r.set, r.state, r.stateDir, verifiedText(r.verified), r.services.join(",")])]))
      }
      for (const f of failed) err(`error: observation incomplete: ${f}`)
    }
    if (failed.length > 0) return yield* Effect.fail(exitWith(2))
  }).pipe(withEngines)
