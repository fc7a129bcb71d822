/**
 * The exec client's small JSON calls against a stand-in Engine: an answer
 * without end, or one that trickles in, fails the exec within its bound
 * instead of filling bottle's memory or hanging it. And following a log for
 * one line (a proxy saying it is ready): from the time asked, ended by the
 * line, by the log's end or by the bound, whatever the Engine sends.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { Writable } from "node:stream"
import { afterLastRun, awaitLogLine, execAttached, lineWriter } from "../src/observers/DockerStreams.js"
import { isEventLine } from "../src/resources/egressAddon.js"
import type { Endpoint } from "../src/observers/endpoint.js"
import { close, endless, serve } from "./support/standInEngine.js"
const sink = () => new Writable({ write: (_c, _e, done) => done() })
const exec = (endpoint: Endpoint, timeoutMs: number) =>
  execAttached(endpoint, "c1", { cmd: ["true"], tty: false, interactive: false }, { stdin: undefined, stdout: sink(), stderr: sink() }, timeoutMs)

describe("exec client", () => {
  it.live("an exec-create answer without end is refused past 1 MiB, not held", () =>
    Effect.gen(function* () {
      const answer = endless(201, 64 * 1024)
      const { endpoint, server } = yield* Effect.promise(() => serve(answer.handler))
      const error = yield* Effect.flip(exec(endpoint, 30_000)).pipe(Effect.ensuring(Effect.promise(() => close(server))))
      expect(error.message).toContain("larger than 1048576 bytes")
      expect(answer.sent()).toBeLessThan(16 * 1024 * 1024)
    }), 30_000)

  it.live("an exec-create answer that trickles in without end fails within the call's bound", () =>
    Effect.gen(function* () {
      const { endpoint, server } = yield* Effect.promise(() => serve((_req, res) => {
        res.writeHead(201, { "Content-Type": "application/json", "Transfer-Encoding": "chunked" })
        const tick = setInterval(() => (res.destroyed ? clearInterval(tick) : res.write(" ")), 100)
        res.on("close", () => clearInterval(tick))
      }))
      const started = Date.now()
      const error = yield* Effect.flip(exec(endpoint, 1_000)).pipe(Effect.ensuring(Effect.promise(() => close(server))))
      expect(error.message).toContain("no whole answer within 1s")
      expect(Date.now() - started).toBeLessThan(5_000)
    }), 30_000)
})

/** One frame of the Engine's multiplexed log stream. */
const frame = (stream: 1 | 2, text: string) => {
  const body = Buffer.from(text)
  const head = Buffer.alloc(8)
  head[0] = stream
  head.writeUInt32BE(body.length, 4)
  return Buffer.concat([head, body])
}
const isReady = (line: string) => isEventLine(line, "ready")
const follow = { since: "0", follow: true }
/** What this process holds, Buffers included (heapUsed alone does not count them). */
const held = () => { const m = process.memoryUsage(); return m.heapUsed + m.arrayBuffers }

/** Waits for the ready line in what `handler` answers as the log; the stand-in Engine is gone afterwards. */
const waitOn = (handler: Parameters<typeof serve>[0], opts: { readonly since: string; readonly follow: boolean }, boundMs = 10_000) =>
  Effect.gen(function* () {
    const { endpoint, server } = yield* Effect.promise(() => serve(handler))
    return yield* awaitLogLine(endpoint, "p1", opts, isReady, boundMs).pipe(Effect.ensuring(Effect.promise(() => close(server))))
  })

/** A log without end (after `first`, `chunk` again and again): the wait ends at its bound, holding under half of what came. */
const heldAtBound = (first: Buffer, chunk: Buffer) =>
  Effect.gen(function* () {
    const answer = endless(200, chunk, first)
    const before = held()
    const started = Date.now()
    const r = yield* waitOn(answer.handler, follow, 1_500)
    expect(r.outcome).toBe("timeout")
    expect(Date.now() - started).toBeLessThan(5_000)
    expect(answer.sent()).toBeGreaterThan(4 * 1024 * 1024)
    expect(held() - before).toBeLessThan(answer.sent() / 2)
  })

describe("reading a log for one line", () => {
  it.live("asks from the time given, and ends at the wanted line of standard output, across frames", () =>
    Effect.gen(function* () {
      let asked = ""
      const r = yield* waitOn((req, res) => {
        asked = req.url ?? ""
        res.writeHead(200, { "Content-Type": "application/vnd.docker.raw-stream" })
        res.write(frame(2, "starting\n"))
        res.write(frame(1, '{"event": '))
        setTimeout(() => res.write(frame(1, '"ready"}\n')), 50)
      }, { since: "1700000000.123000000", follow: true })
      expect(r).toEqual({ outcome: "seen", last: ["starting", '{"event": "ready"}'] })
      const q = new URL(asked, "http://x").searchParams
      expect([q.get("since"), q.get("follow"), q.get("stdout"), q.get("stderr")]).toEqual(["1700000000.123000000", "true", "true", "true"])
    }), 30_000)

  it.live("takes the line from standard output only, and never a line cut out of a longer one", () =>
    Effect.gen(function* () {
      const r = yield* waitOn((_req, res) => {
        res.writeHead(200)
        res.write(frame(2, '{"event": "ready"}\n'))
        // The line, but longer than the 64 KiB looked at: passed over whole, in frames of any size. (JSON
        // takes the spaces before it: any piece cut out of it that ends the line would read as ready.)
        const long = `${" ".repeat(70_000)}{"event": "ready"}\n`
        res.write(frame(1, long.slice(0, 30_000)))
        res.write(frame(1, long.slice(30_000, 70_000)))
        res.write(frame(1, long.slice(70_000)))
        res.end(frame(1, "done\n"))
      }, { since: "0", follow: false })
      expect(r.outcome).toBe("ended")
      expect(r.last.at(-1)).toBe("done")
    }), 30_000)

  it.live("a log that ends without the line says so, with its last lines, an unfinished last one among them", () =>
    Effect.gen(function* () {
      const r = yield* waitOn((_req, res) => {
        res.writeHead(200)
        res.end(frame(2, "Traceback (most recent call last):\nOSError: address in use"))
      }, follow)
      expect(r).toEqual({ outcome: "ended", last: ["Traceback (most recent call last):", "OSError: address in use"] })
    }), 30_000)

  it.live("an unfinished line at a log's end is never the line waited for: whoever wrote it did not finish it", () =>
    Effect.gen(function* () {
      const r = yield* waitOn((_req, res) => {
        res.writeHead(200)
        res.end(frame(1, 'starting\n{"event": "ready"}'))
      }, follow)
      expect(r).toEqual({ outcome: "ended", last: ["starting", '{"event": "ready"}'] })
    }), 30_000)

  it.live("a line without end is held at 64 KiB, and the wait ends at its bound", () => heldAtBound(Buffer.alloc(0), frame(1, "x".repeat(60_000))), 30_000)

  it.live("a frame that claims gigabytes is passed on as it comes, never held whole", () => {
    const head = Buffer.alloc(8)
    head[0] = 1
    head.writeUInt32BE(0xfffffff0, 4)
    return heldAtBound(head, Buffer.alloc(256 * 1024, "x"))
  }, 30_000)

  it.live("an Engine that refuses to read the log fails the wait with its reason", () =>
    Effect.gen(function* () {
      const e = yield* Effect.flip(waitOn((_req, res) => {
        res.writeHead(501, { "Content-Type": "application/json" })
        res.end(JSON.stringify({ message: "configured logging driver does not support reading" }))
      }, follow))
      expect(e.message).toContain("configured logging driver does not support reading")
    }), 30_000)
})

describe("the line writer (logs --egress, readiness)", () => {
  const feed = (chunks: ReadonlyArray<Buffer | string>) =>
    new Promise<Array<string>>((resolve, reject) => {
      const got: Array<string> = []
      const w = lineWriter((l) => got.push(l))
      w.on("error", reject)
      for (const c of chunks) w.write(c)
      w.end(() => resolve(got))
    })
  it("hands on whole lines, an unfinished last one at the end, and a character split between chunks whole", async () => {
    const line = Buffer.from('{"host": "bücher.example", "reason": "¿qué?"}\n', "utf8")
    const at = line.indexOf(Buffer.from("ü")) + 1
    expect(await feed([Buffer.from("one\ntw"), Buffer.from("o\n"), line.subarray(0, at), line.subarray(at), Buffer.from("last")]))
      .toEqual(["one", "two", '{"host": "bücher.example", "reason": "¿qué?"}', "last"])
  })
  it("passes over a line longer than 64 KiB whole, not as pieces, and goes on with the next", async () => {
    const long = "x".repeat(40 * 1024)
    expect(await feed(["a\n", long, long, long, "\nb\n", long, long])).toEqual(["a", "b"])
    expect(await feed([`a\n${long}${long}\nb\n`, `${long}${long}`])).toEqual(["a", "b"])
  })
})

describe("where a container's next run begins in its log", () => {
  const at = (nanos: string) => `${Date.UTC(2026, 11, 7, 21, 22, 51) / 1000}.${nanos}`
  const ms = (milli: number) => Date.UTC(2026, 11, 7, 21, 22, 51, milli)
  it("is one nanosecond after its last run ended, exact to the nanosecond, whatever the zone; its lines later by the millisecond", () => {
    expect(afterLastRun("2026-12-07T21:22:51.249876543Z")).toEqual({ since: at("249876544"), afterMs: ms(249) })
    expect(afterLastRun("2026-12-07T23:22:51.005+02:00")).toEqual({ since: at("005000001"), afterMs: ms(5) })
    expect(afterLastRun("2026-12-07T21:22:51Z")).toEqual({ since: at("000000001"), afterMs: ms(0) })
    expect(afterLastRun("2026-12-07T21:22:51.999999999Z")).toEqual({ since: `${Date.UTC(2026, 11, 7, 21, 22, 52) / 1000}.000000000`, afterMs: ms(999) })
  })
  it("is its whole log for a container that never ran (Go's zero time), and no time for a missing or unreadable one", () => {
    expect(afterLastRun("0001-01-01T00:00:00Z")).toEqual({ since: "0", afterMs: 0 })
    expect(afterLastRun(undefined)).toBeUndefined()
    expect(afterLastRun("yesterday")).toBeUndefined()
    expect(afterLastRun("2026-12-07T21:22:51.249876543")).toBeUndefined()
  })
})

describe("the addon's ready line", () => {
  it("is a JSON object whose event is ready, and nothing that merely contains it", () => {
    expect(isEventLine('{"time": "2026-12-07T21:22:51.249Z", "bottle": "a0", "event": "ready"}', "ready")).toBe(true)
    // A decision line naming a host that spells the event (json.dumps escapes it), an array, text around it.
    expect(isEventLine('{"bottle": "a0", "host": "{\\"event\\": \\"ready\\"}", "verdict": "refused"}', "ready")).toBe(false)
    expect(isEventLine('[{"event": "ready"}]', "ready")).toBe(false)
    expect(isEventLine('GET /{"event": "ready"} 403', "ready")).toBe(false)
    expect(isEventLine('{"event": "ready!"}', "ready")).toBe(false)
  })
  it("given the end of the proxy's last run, is one the addon wrote later by its own time, not one it wrote before", () => {
    const end = Date.parse("2026-12-07T21:22:51.249876543Z")
    expect(isEventLine('{"time": "2026-12-07T21:22:51.250Z", "bottle": "a0", "event": "ready"}', "ready", end)).toBe(true)
    expect(isEventLine('{"time": "2026-12-07T21:22:51.249Z", "bottle": "a0", "event": "ready"}', "ready", end)).toBe(false)
    expect(isEventLine('{"time": "2026-12-07T21:22:50.900Z", "bottle": "a0", "event": "ready"}', "ready", end)).toBe(false)
    expect(isEventLine('{"bottle": "a0", "event": "ready"}', "ready", end)).toBe(false)
    expect(isEventLine('{"time": "soon", "bottle": "a0", "event": "ready"}', "ready", end)).toBe(false)
    expect(isEventLine('{"bottle": "a0", "event": "ready"}', "ready", 0)).toBe(true)
  })
})
