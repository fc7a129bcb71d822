/**
 * `bottle logs NAME [--service S] [-f] [--since T] [--tail N] [--egress] [-o json]`:
 * a bottle's logs; with `--egress`, what its proxy allowed and refused, one
 * row per decision (time, method, host, verdict, rule), from the JSON lines
 * the proxy writes.
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { Writable } from "node:stream"
import { lineWriter, streamLogs } from "../observers/DockerStreams.js"
import { kubeLogs } from "../observers/KubeStreams.js"
import { exitWith } from "./exit.js"
import { observeEverywhere, runningPod } from "./kube.js"
import { withEngines } from "./engines.js"
import type * as O from "./options.js"
import { err, out } from "./output.js"
import { SettingsTag } from "./settings.js"
import { findTarget } from "./target.js"

/** One decision of a bottle's proxy. */
export interface EgressEntry {
  readonly time: string
  readonly method: string
  readonly host: string
  readonly port: number | null
  readonly verdict: "allowed" | "refused"
  readonly rule: string | null
  readonly reason: string
}

/**
 * A log line of either proxy as an egress decision, or undefined for lines
 * that are not one (start-up banners, the addon's "ready"). Pure.
 */
export const egressEntry = (line: string): EgressEntry | undefined => {
  let j: Record<string, unknown>
  try {
    const v = JSON.parse(line) as unknown
    if (v === null || typeof v !== "object" || Array.isArray(v)) return undefined
    j = v as Record<string, unknown>
  } catch {
    return undefined
  }
  const str = (k: string) => (typeof j[k] === "string" ? (j[k] as string) : "")
  // bottle's mitmproxy addon.
  if (j["verdict"] === "allowed" || j["verdict"] === "refused") {
    return { time: str("time"), method: str("method"), host: str("host"), port: typeof j["port"] === "number" ? j["port"] : null, verdict: j["verdict"], rule: typeof j["rule"] === "string" ? j["rule"] : null, reason: str("reason") }
  }
  // pipelock's audit lines: blocked, tunnel_open, forward_http.
  const event = str("event")
  const where = str("target") || str("url")
  const hostPort = /^(?:[a-z]+:\/\/)?([^/:]+)(?::(\d+))?/i.exec(where)
  const base = { time: str("time"), host: hostPort?.[1] ?? where, port: hostPort?.[2] !== undefined ? Number(hostPort[2]) : null, rule: null }
  if (event === "blocked") return { ...base, method: str("method") || "CONNECT", verdict: "refused", reason: str("reason") || "blocked" }
  if (event === "tunnel_open") return { ...base, method: "CONNECT", verdict: "allowed", reason: "allow list" }
  if (event === "forward_http") return { ...base, method: str("method") || "GET", verdict: "allowed", reason: "allow list" }
  return undefined
}

const row = (e: EgressEntry) => [e.time, e.method, `${e.host}${e.port !== null ? `:${e.port}` : ""}`, e.verdict === "refused" ? "REFUSED" : "allowed", e.rule ?? "-"]
const WIDTHS = [24, 8, 40, 8]
const pad = (cells: ReadonlyArray<string>) => cells.map((c, i) => (i < WIDTHS.length ? c.padEnd(WIDTHS[i]!) : c)).join("  ").trimEnd()

export const logs = (o: O.Parsed<typeof O.logs>) =>
  Effect.gen(function* () {
    const settings = yield* SettingsTag
    const { observed, access } = yield* observeEverywhere(settings, o.context)
    const t = findTarget(observed, settings.names, o.bottle, o.egress ? "egress" : o.service)
    if (t._tag === "Missing") {
      err(`error: ${t.why}`)
      return yield* Effect.fail(exitWith(2))
    }
    if (t._tag === "Machine") {
      err(`error: smolvm keeps a machine's console to itself (its command line has no logs); see the proxy's with: bottle logs ${o.bottle} --egress`)
      return yield* Effect.fail(exitWith(2))
    }
    const opts = { follow: o.follow, tty: false, ...Option.match(o.since, { onNone: () => ({}), onSome: (s) => ({ since: s }) }), ...Option.match(o.tail, { onNone: () => ({}), onSome: (n) => ({ tail: n }) }) }
    const failed = (e: { readonly message: string } | string) => Effect.sync(() => err(`error: ${typeof e === "string" ? e : e.message}`)).pipe(Effect.zipRight(Effect.fail(exitWith(2))))
    /** The log, as its backend has it: a container's (stdout and stderr apart) or a pod container's (one stream). */
    let stream: (stdout: Writable, stderr: Writable) => Effect.Effect<void, { readonly message: string } | string>
    if (t._tag === "Pod") {
      if (access._tag !== "Ready") return yield* failed("no Kubernetes cluster is configured")
      if (opts.since !== undefined && !/^\d{4}-\d\d-\d\dT/.test(opts.since)) return yield* failed("on Kubernetes --since takes an RFC 3339 time (2026-11-24T10:00:00Z)")
      const pod = yield* runningPod(access, t.namespace, t.bottle, t.role).pipe(Effect.catchAll(failed))
      stream = (stdout) => kubeLogs(access.target, { namespace: t.namespace, name: pod, container: t.role }, opts, stdout)
    } else {
      const name = t.name
      stream = (stdout, stderr) => streamLogs(settings.docker, name, opts, stdout, stderr)
    }
    if (!o.egress) return yield* stream(process.stdout, process.stderr).pipe(Effect.catchAll(failed))
    const entries: Array<EgressEntry> = []
    const json = o.output === "json"
    if (!json) out(pad(["TIME", "METHOD", "HOST", "VERDICT", "RULE"]))
    const sink = lineWriter((l) => {
      const e = egressEntry(l)
      if (e === undefined) return
      if (json) {
        // Followed, each decision is a JSON line as it comes; otherwise one array at the end.
        if (o.follow) out(JSON.stringify(e))
        else entries.push(e)
      } else out(pad(row(e)))
    })
    // The proxy writes its decisions to stdout; its own complaints (stderr) are not decisions.
    yield* stream(sink, new Writable({ write: (_c, _e, done) => done() })).pipe(
      Effect.ensuring(Effect.async<void>((resume) => { sink.end(() => resume(Effect.void)) })),
      Effect.catchAll(failed)
    )
    if (json && !o.follow) out(JSON.stringify(entries, null, 2))
  }).pipe(withEngines)
