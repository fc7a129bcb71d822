/**
 * The Engine API calls that stream both ways or without end: an exec with
 * its stdin, stdout and stderr attached (the hijacked connection of
 * `POST /exec/{id}/start`, with a TTY and its resizes when there is one), and
 * a container's log, followed. @effect/platform's HTTP client has no
 * connection upgrade, so these speak node's http directly, over the same
 * endpoint as the client in DockerEngine.ts.
 */
import { request, type IncomingMessage } from "node:http"
import { Writable, type Duplex, type Readable } from "node:stream"
import { StringDecoder } from "node:string_decoder"
import * as Effect from "effect/Effect"
import { API_VERSION, DockerError } from "./DockerEngine.js"
import type { Endpoint } from "./endpoint.js"

export interface ExecOptions {
  readonly cmd: ReadonlyArray<string>
  readonly env?: ReadonlyArray<string>
  readonly workdir?: string
  readonly user?: string
  readonly tty: boolean
  /** Attach stdin (and half-close it when the input ends). */
  readonly interactive: boolean
}

export interface ExecIo {
  readonly stdin: Readable | undefined
  readonly stdout: Writable
  readonly stderr: Writable
  /** The terminal's size now, and a way to hear when it changes (TTY only). */
  readonly size?: () => { readonly rows: number; readonly columns: number }
  readonly onResize?: (listener: () => void) => () => void
}

const fail = (endpoint: Endpoint, method: string, path: string, detail: string, status?: number) =>
  new DockerError({ reason: status === 404 ? "NotFound" : status === 409 ? "Conflict" : status === undefined ? "Unreachable" : "Server", endpoint: endpoint.display, method, path, detail, ...(status !== undefined ? { status } : {}) })

const target = (endpoint: Endpoint, path: string) => {
  const url = new URL(`${endpoint.baseUrl}/${API_VERSION}${path}`)
  // servername: a TLS name, never used here (plain HTTP), given as DockerEngine.ts's agent gives it: else node's agent
  // works one out of the Host header, which first compiles node's IPv6 pattern (13-50 ms of the first stream's call).
  return endpoint.socketPath !== undefined
    ? { socketPath: endpoint.socketPath, path: `${url.pathname}${url.search}`, servername: "" }
    : { host: url.hostname, port: Number(url.port), path: `${url.pathname}${url.search}`, servername: "" }
}

/** The most bottle reads of a small JSON answer (an exec's id, its state): a hostile Engine cannot make it hold more. */
const MAX_JSON_ANSWER = 1024 * 1024

/** A small JSON request (create, inspect, resize), bounded: in size, and in time, answer included. */
const json = <A>(endpoint: Endpoint, method: string, path: string, body: unknown, timeoutMs: number): Promise<A> =>
  new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body)
    const req = request({ ...target(endpoint, path), method, timeout: timeoutMs, headers: payload !== undefined ? { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(payload) } : {} }, (res) => {
      const chunks: Array<Buffer> = []
      let size = 0
      res.on("data", (c: Buffer) => {
        size += c.length
        if (size > MAX_JSON_ANSWER) stop(`the answer is larger than ${MAX_JSON_ANSWER} bytes`)
        else chunks.push(c)
      })
      res.on("error", (e) => stop(e.message))
      res.on("end", () => {
        clearTimeout(deadline)
        const text = Buffer.concat(chunks).toString("utf8")
        if ((res.statusCode ?? 500) >= 300) {
          let message = text
          try { message = (JSON.parse(text) as { message?: string }).message ?? text } catch { /* plain text */ }
          return reject(fail(endpoint, method, path, message.trim() || `HTTP ${res.statusCode}`, res.statusCode))
        }
        try { resolve((text === "" ? undefined : JSON.parse(text)) as A) } catch (e) { reject(fail(endpoint, method, path, `unexpected response: ${(e as Error).message}`, res.statusCode)) }
      })
    })
    /** Fails the call with `detail` (a later failure changes nothing) and drops the connection. */
    const stop = (detail: string) => {
      clearTimeout(deadline)
      reject(fail(endpoint, method, path, detail))
      req.destroy()
    }
    // The socket's own timeout is for silence; this one bounds an answer that trickles in without end.
    const deadline = setTimeout(() => stop(`no whole answer within ${timeoutMs / 1000}s`), timeoutMs)
    req.on("timeout", () => req.destroy(new Error(`no answer within ${timeoutMs / 1000}s`)))
    req.on("error", (e) => {
      clearTimeout(deadline)
      reject(e instanceof DockerError ? e : fail(endpoint, method, path, e.message))
    })
    req.end(payload)
  })

/**
 * Splits the Engine's multiplexed stream (frames of an 8-byte header: stream
 * 1 or 2, three zero bytes, a big-endian size) as it arrives. A frame's body
 * is passed on as its bytes come, never held whole: a header that claims
 * gigabytes costs nothing but the bytes that follow it.
 */
export const demultiplexer = (stdout: Writable, stderr: Writable) => {
  const header = Buffer.alloc(8)
  let have = 0
  let left = 0
  let to = stdout
  return (chunk: Buffer) => {
    let at = 0
    while (at < chunk.length) {
      if (left === 0) {
        const n = Math.min(8 - have, chunk.length - at)
        chunk.copy(header, have, at, at + n)
        have += n
        at += n
        if (have < 8) return
        have = 0
        left = header.readUInt32BE(4)
        to = header[0] === 2 ? stderr : stdout
        continue
      }
      const n = Math.min(left, chunk.length - at)
      to.write(chunk.subarray(at, at + n))
      left -= n
      at += n
    }
  }
}

/**
 * Runs a command in a running container with the caller's stdio attached,
 * and returns its exit code. Interruption (Ctrl-C is the command's own, in a
 * TTY) closes the connection.
 */
export const execAttached = (endpoint: Endpoint, container: string, opts: ExecOptions, io: ExecIo, timeoutMs: number): Effect.Effect<number, DockerError> =>
  Effect.tryPromise({
    try: async (signal) => {
      const created = await json<{ Id: string }>(endpoint, "POST", `/containers/${encodeURIComponent(container)}/exec`, {
        Cmd: opts.cmd,
        AttachStdin: opts.interactive,
        AttachStdout: true,
        AttachStderr: true,
        Tty: opts.tty,
        ...(opts.env !== undefined && opts.env.length > 0 ? { Env: opts.env } : {}),
        ...(opts.workdir !== undefined ? { WorkingDir: opts.workdir } : {}),
        ...(opts.user !== undefined ? { User: opts.user } : {})
      }, timeoutMs)
      const id = created.Id
      const startPath = `/exec/${id}/start`
      const socket = await new Promise<Duplex>((resolve, reject) => {
        const payload = JSON.stringify({ Detach: false, Tty: opts.tty })
        const req = request({
          ...target(endpoint, startPath),
          method: "POST",
          headers: { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(payload), Connection: "Upgrade", Upgrade: "tcp" }
        })
        req.on("upgrade", (_res: IncomingMessage, sock: Duplex, head: Buffer) => {
          if (head.length > 0) sock.unshift(head)
          resolve(sock)
        })
        req.on("response", (res: IncomingMessage) => {
          const chunks: Array<Buffer> = []
          res.on("data", (c: Buffer) => chunks.push(c))
          res.on("end", () => reject(fail(endpoint, "POST", startPath, Buffer.concat(chunks).toString("utf8").trim() || `HTTP ${res.statusCode}`, res.statusCode)))
        })
        req.on("error", (e) => reject(fail(endpoint, "POST", startPath, e.message)))
        req.end(payload)
      })
      const resize = () => {
        const s = io.size?.()
        if (s !== undefined) void json(endpoint, "POST", `/exec/${id}/resize?h=${s.rows}&w=${s.columns}`, undefined, timeoutMs).catch(() => undefined)
      }
      // Interrupted (Ctrl-C without a terminal): the connection goes, and with it the command's input and output.
      signal.addEventListener("abort", () => socket.destroy())
      const stopResizing = opts.tty && io.onResize !== undefined ? io.onResize(resize) : () => undefined
      if (opts.tty) resize()
      await new Promise<void>((resolve) => {
        if (opts.tty) socket.on("data", (c: Buffer) => io.stdout.write(c))
        else socket.on("data", demultiplexer(io.stdout, io.stderr))
        socket.on("end", resolve)
        socket.on("close", resolve)
        socket.on("error", resolve)
        if (opts.interactive && io.stdin !== undefined) {
          io.stdin.on("data", (c) => socket.write(c))
          // End of input is passed on: the command sees EOF (the Engine closes the write side).
          io.stdin.on("end", () => socket.end())
          io.stdin.resume()
        }
      })
      stopResizing()
      io.stdin?.pause()
      // The Engine may take a moment to record the exit code after the stream ends.
      for (let i = 0; i < 50; i++) {
        const info = await json<{ Running: boolean; ExitCode: number | null }>(endpoint, "GET", `/exec/${id}/json`, undefined, timeoutMs)
        if (!info.Running && info.ExitCode !== null) return info.ExitCode
        await new Promise((r) => setTimeout(r, 50))
      }
      throw fail(endpoint, "GET", `/exec/${id}/json`, "the command's stream ended but the Engine reports it still running")
    },
    catch: (e) => (e instanceof DockerError ? e : fail(endpoint, "POST", `/containers/${container}/exec`, String((e as Error)?.message ?? e)))
  })

export interface LogOptions {
  readonly follow: boolean
  readonly since?: string
  readonly tail?: string
  /** A container made with a TTY sends its log unframed. */
  readonly tty: boolean
}

/** Writes a container's log to stdout and stderr as the Engine sends it; with `follow`, until the container stops or the command is interrupted. */
export const streamLogs = (endpoint: Endpoint, container: string, opts: LogOptions, out: Writable, err: Writable): Effect.Effect<void, DockerError> =>
  Effect.async<void, DockerError>((resume) => {
    const q = new URLSearchParams({ stdout: "true", stderr: "true", follow: String(opts.follow), timestamps: "false" })
    if (opts.since !== undefined) q.set("since", opts.since)
    if (opts.tail !== undefined) q.set("tail", opts.tail)
    const path = `/containers/${encodeURIComponent(container)}/logs?${q.toString()}`
    const req = request({ ...target(endpoint, path), method: "GET" }, (res) => {
      if ((res.statusCode ?? 500) >= 300) {
        // The Engine's reason, as much of it as a message needs (an answer without end is not held).
        const chunks: Array<Buffer> = []
        let size = 0
        res.on("data", (c: Buffer) => { if (size < 64 * 1024) { chunks.push(c); size += c.length } })
        res.on("end", () => {
          let message = Buffer.concat(chunks).toString("utf8")
          try { message = (JSON.parse(message) as { message?: string }).message ?? message } catch { /* plain text */ }
          resume(Effect.fail(fail(endpoint, "GET", path, message.trim().slice(0, 1000), res.statusCode)))
        })
        return
      }
      const write = opts.tty ? (c: Buffer) => void out.write(c) : demultiplexer(out, err)
      res.on("data", write)
      res.on("end", () => resume(Effect.void))
      res.on("error", (e) => resume(Effect.fail(fail(endpoint, "GET", path, e.message))))
    })
    req.on("error", (e) => resume(Effect.fail(fail(endpoint, "GET", path, e.message))))
    req.end()
    return Effect.sync(() => req.destroy())
  })

/** How reading a log for one line ended: the line came, the log ended (the container stopped, or all of it was read), or time ran out. */
export interface LogWait {
  readonly outcome: "seen" | "ended" | "timeout"
  /** The last lines read, of either stream (at most five, each at most 1000 characters), for a message. */
  readonly last: ReadonlyArray<string>
}

/** Where a container's current (or next) run begins in its log: a log read's `since`, and a time its own lines carry. */
export interface RunStart {
  /** `seconds.nanoseconds` on the Engine's clock, or "0" (the whole log). */
  readonly since: string
  /** The last run's end to the millisecond (UNIX ms; 0 when it never ran): what this run writes is later. */
  readonly afterMs: number
}

/**
 * Where a container's current (or next) run begins, from its `State.FinishedAt` (RFC 3339 to the nanosecond,
 * the Engine's clock): one nanosecond after its last run ended; its whole log for Go's zero time of a
 * container that never ran; undefined for a time the Engine did not give or that cannot be read. Not its
 * StartedAt: the Engine records that after the process is running, and a process that speaks at once has
 * lines stamped before it. The next run starts after FinishedAt, so none of its lines is lost. But
 * FinishedAt is when the last run's process exited, and the Engine stamps a line when it reads it: a line
 * that run wrote last can be stamped after it. What must be the current run's own (a proxy's ready line)
 * carries its own time, and is checked against `afterMs`.
 */
export const afterLastRun = (finishedAt: string | undefined): RunStart | undefined => {
  if (finishedAt === undefined) return undefined
  if (/^0001-01-01T00:00:00(\.0+)?Z$/.test(finishedAt)) return { since: "0", afterMs: 0 }
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/.exec(finishedAt)
  const at = m !== null ? Date.parse(`${m[1]}${m[3]}`) : NaN
  if (m === null || !(at > 0)) return undefined
  const fraction = (m[2] ?? "").padEnd(9, "0")
  // One nanosecond on: a line stamped at the very end is still the last run's.
  const nanos = BigInt(at / 1000) * 1_000_000_000n + BigInt(fraction) + 1n
  return { since: `${nanos / 1_000_000_000n}.${String(nanos % 1_000_000_000n).padStart(9, "0")}`, afterMs: at + Number(fraction.slice(0, 3)) }
}

/** The longest line `lineWriter` hands on: a longer one is passed over whole, never cut into a line of its own. */
const MAX_LINE = 64 * 1024

/**
 * A stream that calls `line` with each whole line written to it (and, at its end, an unfinished last one).
 * It holds at most 64 KiB of a line: a longer one is passed over whole, whatever writes it.
 */
export const lineWriter = (line: (l: string) => void): Writable => {
  let partial = ""
  let overlong = false
  // A character whose bytes two chunks split is decoded whole.
  const utf8 = new StringDecoder("utf8")
  return new Writable({
    write(c: Buffer, _e, next) {
      const parts = (partial + utf8.write(c)).split("\n")
      partial = parts.pop() ?? ""
      for (const l of parts) {
        // However the line came (one chunk or many), one longer than the bound is not handed on.
        if (!overlong && l.length <= MAX_LINE) line(l)
        overlong = false
      }
      if (partial.length > MAX_LINE) {
        overlong = true
        partial = ""
      }
      next()
    },
    final(done) {
      partial += utf8.end()
      if (partial !== "" && !overlong && partial.length <= MAX_LINE) line(partial)
      done()
    }
  })
}

/**
 * Reads a container's log from `since` (a UNIX time, `seconds.nanoseconds`, on the Engine's clock) until a
 * line of its standard output that `wanted` accepts comes, the log ends (with `follow`, when the container
 * stops; without, at the end of what it has written), or `boundMs` passes; then stops reading. Holds at most
 * 64 KiB of an unfinished line and no frame whole: whatever the container writes or the Engine sends, it
 * cannot fill this process.
 */
export const awaitLogLine = (
  endpoint: Endpoint,
  container: string,
  opts: { readonly since: string; readonly follow: boolean },
  wanted: (line: string) => boolean,
  boundMs: number
): Effect.Effect<LogWait, DockerError> =>
  Effect.suspend(() => {
    const last: Array<string> = []
    let seen = false
    let ended = false
    let heard: () => void = () => undefined
    const note = (fromStdout: boolean) => lineWriter((line) => {
      last.push(line.slice(0, 1000))
      if (last.length > 5) last.shift()
      if (fromStdout && !seen && !ended && wanted(line)) {
        seen = true
        heard()
      }
    })
    const theLine = Effect.async<void>((resume) => {
      heard = () => resume(Effect.void)
      if (seen) resume(Effect.void)
    })
    const outcome = (o: LogWait["outcome"]): LogWait => ({ outcome: seen ? "seen" : o, last })
    const out = note(true)
    const err = note(false)
    // At the log's end, an unfinished last line is among the last words, never the line waited for: the
    // container that wrote it has stopped (with follow) or not finished it.
    const end = (w: Writable) => Effect.async<void>((resume) => { w.end(() => resume(Effect.void)) })
    // The first to end wins; the other is interrupted (the log's request destroyed with it).
    return Effect.raceFirst(
      streamLogs(endpoint, container, { follow: opts.follow, since: opts.since, tty: false }, out, err).pipe(
        Effect.tap(() => { ended = true }),
        Effect.zipRight(Effect.all([end(out), end(err)])),
        Effect.map(() => outcome("ended"))
      ),
      theLine.pipe(Effect.map(() => outcome("seen")))
    ).pipe(Effect.timeoutTo({ duration: boundMs, onSuccess: (w) => w, onTimeout: () => outcome("timeout") }))
  })

/**
 * Builds an image from a tar of its context (`POST /build`), handing each
 * line of progress to `progress`; the Engine reports a failed build inside
 * its 200 answer, as an `error` line.
 */
export const buildImage = (
  endpoint: Endpoint,
  tag: string,
  context: Readable,
  opts: { readonly dockerfile: string; readonly args: Readonly<Record<string, string>> },
  progress: (line: string) => void,
  timeoutMs: number
): Effect.Effect<void, DockerError> =>
  Effect.async<void, DockerError>((resume) => {
    const q = new URLSearchParams({ t: tag, dockerfile: opts.dockerfile, rm: "true", forcerm: "true", buildargs: JSON.stringify(opts.args), labels: JSON.stringify({ "dev.bottle.managed-by": "bottle" }) })
    const path = `/build?${q.toString()}`
    let failed: string | undefined
    const req = request({ ...target(endpoint, path), method: "POST", headers: { "Content-Type": "application/x-tar" } }, (res) => {
      const status = res.statusCode ?? 500
      // Line by line, each held to lineWriter's bound, the unfinished last one included at the end.
      const lines = lineWriter((line) => {
        if (line.trim() === "") return
        if (status >= 300) { failed = line; return }
        try {
          const m = JSON.parse(line) as { stream?: string; status?: string; error?: string; errorDetail?: { message?: string } }
          if (m.error !== undefined) failed = m.errorDetail?.message ?? m.error
          const text = (m.stream ?? m.status ?? "").trimEnd()
          if (text !== "") progress(text)
        } catch { progress(line) }
      })
      lines.on("finish", () => {
        if (status >= 300) {
          let message = failed ?? ""
          try { message = (JSON.parse(message) as { message?: string }).message ?? message } catch { /* plain */ }
          resume(Effect.fail(fail(endpoint, "POST", "/build", message.trim().slice(0, 1000) || `HTTP ${status}`, status)))
        } else if (failed !== undefined) resume(Effect.fail(fail(endpoint, "POST", "/build", `the build failed: ${failed}`, 500)))
        else resume(Effect.void)
      })
      res.pipe(lines)
    })
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`the build took longer than ${timeoutMs / 1000}s`)))
    req.on("error", (e) => resume(Effect.fail(fail(endpoint, "POST", "/build", e.message))))
    context.on("error", (e) => req.destroy(e))
    context.pipe(req)
    return Effect.sync(() => req.destroy())
  })

/** Runs a command in a running container and returns its exit code and output (at most 1 MiB of each), within `boundMs`. */
export const execCapture = (endpoint: Endpoint, container: string, cmd: ReadonlyArray<string>, boundMs: number, callTimeoutMs: number) => {
  const collect = () => {
    const chunks: Array<Buffer> = []
    let size = 0
    const w = new Writable({
      write(c: Buffer, _e, done) {
        if (size < 1024 * 1024) { chunks.push(c); size += c.length }
        done()
      }
    })
    return { w, text: () => Buffer.concat(chunks).toString("utf8") }
  }
  const out = collect()
  const err = collect()
  return execAttached(endpoint, container, { cmd, tty: false, interactive: false }, { stdin: undefined, stdout: out.w, stderr: err.w }, callTimeoutMs).pipe(
    Effect.map((code) => ({ code, stdout: out.text(), stderr: err.text() })),
    Effect.timeoutFail({ duration: boundMs, onTimeout: () => fail(endpoint, "POST", `/containers/${container}/exec`, `the command did not end within ${boundMs / 1000}s`) })
  )
}
