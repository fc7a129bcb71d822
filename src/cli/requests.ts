/**
 * `bottle requests [NAME] [--all] [-o json]`, `bottle approve ID [-f FILE]`,
 * `bottle deny ID [--note TEXT]`: what agents asked their supervisors for,
 * and a person's answer.
 *
 * Requests are files the supervisor sidecar wrote from an agent's words:
 * read without following a symlink or waiting on a FIFO, bounded, every
 * field checked, and shown with control characters taken out. An approved
 * egress request becomes a change to the spec file (the entry added to the
 * bottle's egress.allow in place, every other byte kept), shown as a diff
 * and applied, so the spec stays the one source of truth; the decision is
 * recorded only once that apply succeeded.
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { closeSync, constants as fsc, fstatSync, openSync, readdirSync, readSync, renameSync, statSync, writeFileSync } from "node:fs"
import { basename, dirname, join } from "node:path"
import { readMetadata } from "../observers/stateObserver.js"
import { parseAllowEntry } from "../resources/egressRules.js"
import { MAX_REQUEST_BYTES, parseRequest, REQUEST_ID, shown, type Decision, type SuperviseRequest } from "../resources/supervise.js"
import type { Settings } from "../resources/settings.js"
import { exitWith } from "./exit.js"
import { withEngines } from "./engines.js"
import type * as O from "./options.js"
import { err, json, out } from "./output.js"
import { mutate } from "./pipeline.js"
import { SettingsTag } from "./settings.js"
import { byText } from "../resources/order.js"

/** The most state dirs and queued files looked at: far beyond any real install, short of a flood. */
const MAX_DIRS = 10_000
const MAX_FILES = 1_000

/** A regular file's text, never through a symlink nor blocking on a FIFO, at most `limit` bytes; undefined otherwise. */
const readPlain = (path: string, limit: number): string | undefined => {
  let fd: number | undefined
  try {
    fd = openSync(path, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK)
    const info = fstatSync(fd)
    if (!info.isFile() || info.size > limit) return undefined
    const buf = Buffer.alloc(info.size)
    let at = 0
    while (at < buf.length) {
      const n = readSync(fd, buf, at, buf.length - at, at)
      if (n === 0) break
      at += n
    }
    return buf.subarray(0, at).toString("utf8")
  } catch {
    return undefined
  } finally {
    if (fd !== undefined) closeSync(fd)
  }
}

const list = (dir: string, max: number): ReadonlyArray<string> => {
  try {
    return readdirSync(dir).sort().slice(0, max)
  } catch {
    return []
  }
}

export interface Found {
  readonly request: SuperviseRequest
  readonly stateDir: string
  readonly set: string
  readonly decision: Decision | undefined
}

const readDecision = (stateDir: string, id: string): Decision | undefined => {
  const text = readPlain(join(stateDir, "supervise", "decisions", `${id}.json`), MAX_REQUEST_BYTES)
  if (text === undefined) return undefined
  try {
    const d = JSON.parse(text) as Decision
    return d.id === id && (d.decision === "approved" || d.decision === "denied") ? d : undefined
  } catch {
    return undefined
  }
}

/** Every request of this install's bottles (of `only`, if given), oldest first. */
export const findRequests = (settings: Settings, only?: string): ReadonlyArray<Found> => {
  const found: Array<Found> = []
  for (const name of list(settings.stateRoot, MAX_DIRS)) {
    if (only !== undefined && name !== only) continue
    const stateDir = join(settings.stateRoot, name)
    const meta = readMetadata(readPlain(join(stateDir, "metadata.json"), 64 * 1024) ?? "")
    if (meta === undefined || !("prefix" in meta) || meta.prefix !== settings.names.prefix || meta.name !== name) continue
    const queue = join(stateDir, "supervise", "queue")
    for (const f of list(queue, MAX_FILES)) {
      const id = f.replace(/\.json$/, "")
      if (!f.endsWith(".json") || !REQUEST_ID.test(id)) continue
      const text = readPlain(join(queue, f), MAX_REQUEST_BYTES)
      const request = text === undefined ? undefined : parseRequest(text, name)
      if (request === undefined || request.id !== id) continue
      found.push({ request, stateDir, set: meta.set ?? "default", decision: readDecision(stateDir, id) })
    }
  }
  return found.sort((a, b) => byText(a.request.at, b.request.at))
}

const age = (at: string) => {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(at)) / 1000))
  return s < 120 ? `${s}s` : s < 7200 ? `${Math.round(s / 60)}m` : s < 172800 ? `${Math.round(s / 3600)}h` : `${Math.round(s / 86400)}d`
}

const table = (rows: ReadonlyArray<ReadonlyArray<string>>) => {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)))
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  ")).join("\n")
}

export const requests = (o: O.Parsed<typeof O.requests>) =>
  Effect.gen(function* () {
    const settings = yield* SettingsTag
    const found = findRequests(settings, Option.getOrUndefined(o.bottle)).filter((f) => o.all || f.decision === undefined)
    if (o.output === "json") {
      json(found.map((f) => ({ ...f.request, decision: f.decision ?? null })))
      return
    }
    if (found.length === 0) {
      out(o.all ? "No requests." : "No pending requests.")
      return
    }
    out(table([
      ["ID", "BOTTLE", "KIND", "WHAT", "AGE", ...(o.all ? ["DECISION"] : []), "REASON"],
      ...found.map((f) => [f.request.id, f.request.bottle, f.request.kind, shown(f.request.what, 80), age(f.request.at), ...(o.all ? [f.decision?.decision ?? "pending"] : []), shown(f.request.reason, 100)])
    ]))
  })

/** The pending request `id`, or the command ends with 2 saying why. */
const pendingRequest = (settings: Settings, id: string) =>
  Effect.gen(function* () {
    if (!REQUEST_ID.test(id)) {
      err(`error: '${shown(id, 40)}' is not a request id (they look like r0123456789ab)`)
      return yield* Effect.fail(exitWith(2))
    }
    const f = findRequests(settings).find((x) => x.request.id === id)
    if (f === undefined) {
      err(`error: no request ${id} (bottle requests --all lists them)`)
      return yield* Effect.fail(exitWith(2))
    }
    if (f.decision !== undefined) {
      err(`error: request ${id} was already ${f.decision.decision} at ${f.decision.at}`)
      return yield* Effect.fail(exitWith(2))
    }
    return f
  })

/** Records a decision where the supervisor reads it (the agent's side sees it read-only). */
const decide = (f: Found, decision: Decision["decision"], text: string) => {
  const d: Decision = { id: f.request.id, decision, at: new Date().toISOString(), note: text }
  const dir = join(f.stateDir, "supervise", "decisions")
  const path = join(dir, `${f.request.id}.json`)
  const tmp = `${path}.${process.pid}.tmp`
  writeFileSync(tmp, `${JSON.stringify(d)}\n`, { mode: 0o644, flag: "wx" })
  renameSync(tmp, path)
}

/** The lines that differ between two texts, as a unified diff's one hunk. */
export const lineDiff = (file: string, before: string, after: string): string => {
  const a = before.split("\n")
  const b = after.split("\n")
  let top = 0
  while (top < a.length && top < b.length && a[top] === b[top]) top++
  let end = 0
  while (end < a.length - top && end < b.length - top && a[a.length - 1 - end] === b[b.length - 1 - end]) end++
  const removed = a.slice(top, a.length - end)
  const added = b.slice(top, b.length - end)
  return [`--- ${file}`, `+++ ${file}`, `@@ -${top + 1},${removed.length} +${top + 1},${added.length} @@`, ...removed.map((l) => `-${l}`), ...added.map((l) => `+${l}`)].join("\n")
}

export const approve = (o: O.Parsed<typeof O.approve>) =>
  Effect.gen(function* () {
    const settings = yield* SettingsTag
    const f = yield* pendingRequest(settings, o.id)
    const r = f.request
    if (r.kind === "capability") {
      decide(f, "approved", "a person approved it; what it needs is theirs to give")
      out(`Approved ${r.id}: capability ${shown(r.what)} for '${r.bottle}'. bottle changes nothing for it: give the bottle what it needs in its spec, then bottle apply.`)
      return
    }
    if (typeof parseAllowEntry(r.what) === "string") {
      err(`error: request ${r.id} asks for '${shown(r.what)}', which egress.allow cannot hold`)
      return yield* Effect.fail(exitWith(2))
    }
    if (Option.isNone(o.file)) {
      err(`error: approving egress to ${r.what} changes the spec of '${r.bottle}': give its YAML spec file with -f FILE`)
      return yield* Effect.fail(exitWith(2))
    }
    const file = o.file.value
    if (/\.toml$/i.test(file)) {
      err(`error: bottle edits YAML spec files only: add "${r.what}" to spec.egress.allow of '${r.bottle}' in ${file} yourself, then run bottle apply -f ${file} and bottle approve ${r.id} again`)
      return yield* Effect.fail(exitWith(2))
    }
    const before = readPlain(file, 4 * 1024 * 1024)
    if (before === undefined) {
      err(`error: ${file}: cannot read it as a regular file`)
      return yield* Effect.fail(exitWith(2))
    }
    const { addAllowEntry } = yield* Effect.promise(() => import("../resources/parseDocuments.js"))
    const edited = addAllowEntry(before, r.bottle, r.what)
    if (edited._tag === "Err") {
      err(`error: ${file} ${edited.message}`)
      return yield* Effect.fail(exitWith(2))
    }
    if (edited._tag === "Changed") {
      out(lineDiff(file, before, edited.text))
      // In place of the file, atomically, with its mode kept.
      const mode = statSync(file).mode & 0o777
      const tmp = join(dirname(file), `.${basename(file)}.bottle-${process.pid}.tmp`)
      writeFileSync(tmp, edited.text, { mode, flag: "wx" })
      renameSync(tmp, file)
      out(`${file}: '${r.bottle}' may now reach ${r.what}.\n`)
    } else {
      out(`${file}: '${r.bottle}' already allows ${r.what}.\n`)
    }
    yield* mutate({ command: "bottle apply", files: [file], set: f.set, prune: "none", output: o.output, dryRun: false, yes: o.yes, concurrency: 8 }).pipe(
      Effect.tapError(() => Effect.sync(() => err(`The spec file is changed; its apply did not finish, so request ${r.id} is still pending. Run bottle apply -f ${file}, then bottle approve ${r.id} -f ${file} again.`)))
    )
    decide(f, "approved", `${r.what} is now in egress.allow, and applied`)
    out(`Approved ${r.id}.`)
  }).pipe(withEngines)

export const deny = (o: O.Parsed<typeof O.deny>) =>
  Effect.gen(function* () {
    const settings = yield* SettingsTag
    const f = yield* pendingRequest(settings, o.id)
    decide(f, "denied", Option.getOrElse(o.note, () => ""))
    out(`Denied ${f.request.id}: ${f.request.kind} ${shown(f.request.what)} for '${f.request.bottle}'.`)
  })
