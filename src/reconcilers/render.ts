/** Plans and reports as text a person reads (Terraform-like) and as JSON. Pure. */
import { isMutating, kindOf, type Action, type Plan } from "./actions.js"
import type { ActionResult, Report } from "./report.js"
import { byText } from "../resources/order.js"

export interface Style {
  readonly green: (s: string) => string
  readonly red: (s: string) => string
  readonly yellow: (s: string) => string
  readonly cyan: (s: string) => string
  readonly dim: (s: string) => string
  readonly bold: (s: string) => string
}

const id = (s: string) => s
export const plainStyle: Style = { green: id, red: id, yellow: id, cyan: id, dim: id, bold: id }
const sgr = (code: string) => (s: string) => `\u001b[${code}m${s}\u001b[0m`
export const colourStyle: Style = { green: sgr("32"), red: sgr("31"), yellow: sgr("33"), cyan: sgr("36"), dim: sgr("2"), bold: sgr("1") }

/** The symbol of a line, or undefined for actions folded into another line. */
const symbolOf = (a: Action, s: Style): string | undefined => {
  switch (a._tag) {
    case "CreateNetwork":
    case "CreateContainer":
    case "CreateMachine":
      return a.replaces ? s.yellow("-/+") : s.green("+")
    case "BuildImage":
      return s.green("+")
    case "ApplyObject":
      return a.create ? s.green("+") : s.yellow("~")
    case "DeleteObject":
      return s.red("-")
    case "EnsureStateDir":
      return a.exists ? s.yellow("~") : s.green("+")
    case "StartContainer":
    case "StartMachine":
      return a.created ? undefined : s.cyan("~")
    case "RemoveContainer":
    case "RemoveNetwork":
      return a.replaced ? undefined : s.red("-")
    case "StopMachine":
      return a.replaced ? undefined : a.cause.startsWith("unreachable") ? s.cyan("~") : undefined
    case "DeleteMachine":
      return a.replaced ? undefined : s.red("-")
    case "RemoveVolume":
    case "RemoveStateDir":
      return s.red("-")
    case "Blocked":
      return s.yellow("!")
    case "Unchanged":
      return undefined
  }
}

const verbOf = (a: Action): string => {
  switch (a._tag) {
    case "StartContainer":
    case "StartMachine":
      return "start "
    case "StopMachine":
      return "restart "
    case "EnsureStateDir":
      return a.exists ? "update " : ""
    case "BuildImage":
      return "build "
    default:
      return ""
  }
}

const causeOf = (a: Action): string => (a._tag === "Blocked" ? `blocked: ${a.rule}: ${a.cause}` : a.cause)

export interface Summary {
  readonly add: number
  readonly change: number
  readonly destroy: number
  readonly blocked: number
  readonly unchanged: number
}

export const summarise = (plan: Plan): Summary => {
  let add = 0, change = 0, destroy = 0, blocked = 0, unchanged = 0
  for (const a of plan.actions) {
    switch (a._tag) {
      case "CreateNetwork":
      case "CreateContainer":
      case "CreateMachine":
        if (a.replaces) change++
        else add++
        break
      case "EnsureStateDir":
        if (a.exists) change++
        else add++
        break
      case "BuildImage":
        add++
        break
      case "ApplyObject":
        if (a.create) add++
        else change++
        break
      case "DeleteObject":
        destroy++
        break
      case "StartContainer":
      case "StartMachine":
        if (!a.created) change++
        break
      case "RemoveContainer":
      case "RemoveNetwork":
      case "DeleteMachine":
        if (!a.replaced) destroy++
        break
      case "RemoveVolume":
      case "RemoveStateDir":
        destroy++
        break
      case "Blocked":
        blocked++
        break
      case "Unchanged":
        unchanged++
        break
      case "StopMachine":
        break
    }
  }
  return { add, change, destroy, blocked, unchanged }
}

/** True when applying the plan would change nothing. */
export const inSync = (plan: Plan): boolean => !plan.actions.some(isMutating)

export const renderPlan = (plan: Plan, s: Style = plainStyle): string => {
  const lines: Array<string> = []
  for (const f of plan.partial) lines.push(s.red(`observation incomplete: ${f.source} failed: ${f.error}`))
  for (const n of plan.notes) lines.push(s.dim(`note: ${n}`))
  const groups = new Map<string, Array<Action>>()
  /** A set's ApplySet parent belongs to no one bottle, and is no leftover. */
  const PARENTS = "\u0001"
  const isParent = (a: Action) => (a._tag === "ApplyObject" || a._tag === "DeleteObject") && /\/ConfigMap\/applyset\./.test(a.resource)
  for (const a of plan.actions) {
    const key = a.bottle ?? (isParent(a) ? PARENTS : "")
    groups.set(key, [...(groups.get(key) ?? []), a])
  }
  const rank = (k: string) => (k === "" ? 2 : k === PARENTS ? 1 : 0)
  const keys = [...groups.keys()].sort((a, b) => rank(a) - rank(b) || byText(a, b))
  for (const key of keys) {
    const shown = groups.get(key)!.flatMap((a) => {
      const sym = symbolOf(a, s)
      return sym === undefined ? [] : [`  ${sym} ${kindOf(a)} ${verbOf(a)}${a.resource}  ${s.dim(`(${causeOf(a)})`)}`]
    })
    if (shown.length === 0) continue
    if (lines.length > 0) lines.push("")
    lines.push(s.bold(key === "" ? "leftovers:" : key === PARENTS ? "ApplySet parents:" : `bottle ${key}:`))
    lines.push(...shown)
  }
  const sum = summarise(plan)
  if (lines.length > 0) lines.push("")
  if (inSync(plan) && sum.blocked === 0) lines.push(`No changes. ${sum.unchanged} resource${sum.unchanged === 1 ? "" : "s"} in sync.`)
  else lines.push(`Plan: ${sum.add} to add, ${sum.change} to change, ${sum.destroy} to destroy${sum.blocked > 0 ? `, ${sum.blocked} blocked` : ""}.`)
  return lines.join("\n")
}

/** One line: how many actions were done, failed and skipped. */
export const renderReportSummary = (report: Report): string => {
  const failed = report.results.filter((r) => r.outcome._tag === "Failed").length
  const skipped = report.results.filter((r) => r.outcome._tag === "Skipped").length
  return `${report.results.length - failed - skipped} done, ${failed} failed, ${skipped} skipped.`
}

/** One line per finished action, as the executor reports it. */
export const renderResult = (r: ActionResult, s: Style = plainStyle): string => {
  const o = r.outcome
  const tag = o._tag === "Done" ? s.green("done") : o._tag === "Failed" ? s.red("FAILED") : s.yellow("skipped")
  const detail = o._tag === "Failed" ? `: ${o.error}` : o._tag === "Skipped" ? `: ${o.reason}` : o.note ? ` (${o.note})` : ""
  return `${tag} ${r.action._tag} ${r.action.resource}${detail}`
}

/** The JSON form of a plan: stable keys, no class instances. */
export const planJson = (plan: Plan) => ({
  actions: plan.actions.map(actionJson),
  partial: plan.partial,
  notes: plan.notes,
  summary: summarise(plan)
})

export const actionJson = (a: Action) => ({
  type: a._tag,
  id: a.id,
  bottle: a.bottle ?? null,
  kind: kindOf(a),
  resource: a.resource,
  cause: a.cause,
  after: a.after,
  ...(a._tag === "Blocked" ? { rule: a.rule, error: a.error } : {})
})
