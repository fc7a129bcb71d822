/**
 * The Engine client against a stand-in Engine on a unix socket: calls whose
 * answers carry no body (204 of a remove or a start) must hand their
 * keep-alive socket back, or a prune of more bottles than the pool holds
 * stalls until every later call times out; an Engine that sends headers and
 * then stalls, or answers without end, must not hang bottle or fill its memory.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { mkdtempSync } from "node:fs"
import type { createServer } from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { DockerEngine, layer, type DockerEngineShape, type DockerError } from "../src/observers/DockerEngine.js"
import { parseDockerHost, type Endpoint } from "../src/observers/endpoint.js"
import { close, endless, serve } from "./support/standInEngine.js"

describe("DockerEngine client", () => {
  it.live("100 bodiless answers in a row, 8 at a time, all succeed (no socket is kept by an unread answer)", () =>
    Effect.gen(function* () {
      const seen: Array<string> = []
      const { endpoint, server } = yield* Effect.promise(() => serve((req, res) => {
        seen.push(`${req.method} ${req.url}`)
        res.writeHead(204).end()
      }))
      const ids = Array.from({ length: 100 }, (_, i) => `c${i}`)
      const result = yield* Effect.gen(function* () {
        const docker = yield* DockerEngine
        yield* Effect.forEach(ids.slice(0, 50), (id) => docker.removeContainer(id), { concurrency: 8 })
        yield* Effect.forEach(ids.slice(50), (id) => docker.startContainer(id), { concurrency: 8 })
        return "ok"
      }).pipe(
        Effect.provide(layer({ endpoint, timeout: "2 seconds", pullTimeout: "2 seconds" })),
        Effect.either,
        Effect.ensuring(Effect.promise(() => close(server)))
      )
      expect(result._tag === "Right" ? "ok" : String(result.left)).toBe("ok")
      expect(seen.filter((r) => r.startsWith("DELETE /v1.41/containers/"))).toHaveLength(50)
      expect(seen.filter((r) => r.endsWith("/start"))).toHaveLength(50)
    }), 30_000)

  /** The error a call gets from an Engine that answers every request with `status` and `message`. */
  const failWith = (status: number, message: string, call: (d: DockerEngineShape) => Effect.Effect<unknown, DockerError> = (d) => d.removeContainer("c1")) =>
    Effect.gen(function* () {
      const { endpoint, server } = yield* Effect.promise(() => serve((_req, res) => {
        res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify({ message }))
      }))
      return yield* Effect.flatMap(DockerEngine, call).pipe(
        Effect.provide(layer({ endpoint, timeout: "2 seconds", pullTimeout: "2 seconds" })),
        Effect.flip,
        Effect.ensuring(Effect.promise(() => close(server)))
      )
    })

  it.live.each([
    [404, "No such container: c1", "NotFound"],
    [409, "removal of container c1 is already in progress", "InProgress"],
    [403, "error while removing network: network n1 id 0123 has active endpoints", "InUse"],
    [500, "driver failed", "Server"]
  ] as const)("an error answer %i %s keeps the Engine's message, with reason %s", ([status, message, reason]) =>
    Effect.gen(function* () {
      const error = yield* failWith(status, message)
      expect(error.reason).toBe(reason)
      expect(error.message).toContain(message)
    }), 30_000)

  it.live("an Engine out of address pools: its words, and what to do about it", () =>
    Effect.gen(function* () {
      const error = yield* failWith(500, "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network", (d) => d.createNetwork({ Name: "n" }))
      expect(error.message).toContain("non-overlapping IPv4 address pool")
      expect(error.message).toContain("default-address-pools")
    }), 30_000)

  /** Stand-ins that send a 200's headers and then stall: the body is what never comes. */
  const stalls: ReadonlyArray<readonly [string, Parameters<typeof createServer>[1]]> = [
    ["a chunked answer cut off mid-body", (_req, res) => {
      res.writeHead(200, { "Content-Type": "application/json", "Transfer-Encoding": "chunked" })
      res.write('[{"Id":"c1","Names":')
    }],
    ["a Content-Length larger than what is sent", (_req, res) => {
      res.writeHead(200, { "Content-Type": "application/json", "Content-Length": "4096" })
      res.write('{"Id":"c1",')
    }],
    ["headers and no body at all", (_req, res) => {
      res.writeHead(200, { "Content-Type": "application/json", "Transfer-Encoding": "chunked" })
      res.flushHeaders()
    }]
  ]

  it.live.each(stalls)("an Engine that sends %s: list, inspect and ping each fail with Timeout within the 1 s bound", ([, handler]) =>
    Effect.gen(function* () {
      const { endpoint, server } = yield* Effect.promise(() => serve(handler))
      const calls: ReadonlyArray<readonly [string, (d: DockerEngineShape) => Effect.Effect<unknown, DockerError>]> = [
        ["listContainers", (d) => d.listContainers({})],
        ["inspectContainer", (d) => d.inspectContainer("c1")],
        ["ping", (d) => d.ping]
      ]
      const outcomes = yield* Effect.forEach(calls, ([name, call]) =>
        Effect.gen(function* () {
          const started = Date.now()
          const error = yield* Effect.flatMap(DockerEngine, call).pipe(Effect.flip)
          return { name, reason: error.reason, fast: Date.now() - started < 3_000 }
        })).pipe(
        Effect.provide(layer({ endpoint, timeout: "1 second", pullTimeout: "1 second" })),
        Effect.ensuring(Effect.promise(() => close(server)))
      )
      expect(outcomes).toEqual(calls.map(([name]) => ({ name, reason: "Timeout", fast: true })))
    }), 30_000)

  it.live("an answer without end fails with BadResponse once it passes the client's 64 MiB limit", () =>
    Effect.gen(function* () {
      const answer = endless(200, 1024 * 1024)
      const { endpoint, server } = yield* Effect.promise(() => serve(answer.handler))
      const error = yield* Effect.flatMap(DockerEngine, (d) => d.listContainers({})).pipe(
        Effect.provide(layer({ endpoint, timeout: "60 seconds", pullTimeout: "60 seconds" })),
        Effect.flip,
        Effect.ensuring(Effect.promise(() => close(server)))
      )
      expect(error.reason).toBe("BadResponse")
      expect(error.message).toContain(`larger than ${64 * 1024 * 1024} bytes`)
      // It stopped reading near the limit, not after holding the whole stream.
      expect(answer.sent()).toBeLessThan(96 * 1024 * 1024)
    }), 60_000)

  it.live("an answer cut off by a reset connection fails at once with BadResponse, not as an unreachable Engine or a timeout", () =>
    Effect.gen(function* () {
      const { endpoint, server } = yield* Effect.promise(() => serve((_req, res) => {
        res.writeHead(200, { "Content-Type": "application/json", "Transfer-Encoding": "chunked" })
        res.write('[{"Id":"c1",')
        setTimeout(() => res.socket?.destroy(), 50)
      }))
      const started = Date.now()
      const error = yield* Effect.flatMap(DockerEngine, (d) => d.listContainers({})).pipe(
        Effect.provide(layer({ endpoint, timeout: "10 seconds", pullTimeout: "10 seconds" })),
        Effect.flip,
        Effect.ensuring(Effect.promise(() => close(server)))
      )
      expect(error.reason).toBe("BadResponse")
      expect(Date.now() - started).toBeLessThan(5_000)
    }), 30_000)

  it.live("no Engine on the socket: Unreachable, naming the socket's error", () =>
    Effect.gen(function* () {
      const endpoint = parseDockerHost(`unix://${join(mkdtempSync(join(tmpdir(), "bottle-engine-")), "none.sock")}`) as Endpoint
      const error = yield* Effect.flatMap(DockerEngine, (d) => d.version).pipe(
        Effect.provide(layer({ endpoint, timeout: "2 seconds", pullTimeout: "2 seconds" })),
        Effect.flip
      )
      expect(error.reason).toBe("Unreachable")
      expect(error.message).toContain("ENOENT")
    }), 30_000)

  it.live("an error answer past 64 KiB is refused with its status, never read whole", () =>
    Effect.gen(function* () {
      const answer = endless(404, 64 * 1024)
      const { endpoint, server } = yield* Effect.promise(() => serve(answer.handler))
      const error = yield* Effect.flatMap(DockerEngine, (d) => d.inspectContainer("c1")).pipe(
        Effect.provide(layer({ endpoint, timeout: "10 seconds", pullTimeout: "10 seconds" })),
        Effect.flip,
        Effect.ensuring(Effect.promise(() => close(server)))
      )
      expect(error.reason).toBe("NotFound")
      expect(error.message).toContain("HTTP 404")
      expect(answer.sent()).toBeLessThan(16 * 1024 * 1024)
    }), 30_000)

  it.live("a pull hands on each progress line, even one split across chunks, and fails on the Engine's error line inside its 200", () =>
    Effect.gen(function* () {
      const { endpoint, server } = yield* Effect.promise(() => serve((req, res) => {
        res.writeHead(200, { "Content-Type": "application/json", "Transfer-Encoding": "chunked" })
        if (req.url?.includes("fromImage=ok")) {
          res.write('{"status":"Pulling from x","id":"la')
          setTimeout(() => res.end('test"}\n{"status":"Done"}\n'), 20)
        } else {
          res.end('{"status":"Pulling"}\n{"error":"manifest unknown"}\n')
        }
      }))
      const lines: Array<string> = []
      const [ok, bad] = yield* Effect.flatMap(DockerEngine, (d) =>
        Effect.all([Effect.either(d.pullImage("ok:1", (l) => lines.push(l))), Effect.flip(d.pullImage("missing:1", () => {}))])).pipe(
        Effect.provide(layer({ endpoint, timeout: "5 seconds", pullTimeout: "5 seconds" })),
        Effect.ensuring(Effect.promise(() => close(server)))
      )
      expect(ok._tag).toBe("Right")
      expect(lines).toEqual(["latest Pulling from x", "Done"])
      expect(bad.reason).toBe("NotFound")
      expect(bad.message).toContain("cannot pull missing:1: manifest unknown")
    }), 30_000)

  it.live("an empty 200 where JSON was asked for is BadResponse, never an empty result", () =>
    Effect.gen(function* () {
      const { endpoint, server } = yield* Effect.promise(() => serve((_req, res) => { res.writeHead(200, { "Content-Type": "application/json" }).end() }))
      const error = yield* Effect.flatMap(DockerEngine, (d) => d.listContainers({})).pipe(
        Effect.provide(layer({ endpoint, timeout: "5 seconds", pullTimeout: "5 seconds" })),
        Effect.flip,
        Effect.ensuring(Effect.promise(() => close(server)))
      )
      expect(error.reason).toBe("BadResponse")
    }), 30_000)

  it.live("an error answer whose body is cut off keeps the reason its status gives", () =>
    Effect.gen(function* () {
      const { endpoint, server } = yield* Effect.promise(() => serve((_req, res) => {
        res.writeHead(404, { "Content-Type": "application/json", "Transfer-Encoding": "chunked" })
        res.write('{"message":"No such')
        setTimeout(() => res.socket?.destroy(), 50)
      }))
      const error = yield* Effect.flatMap(DockerEngine, (d) => d.removeContainer("c1")).pipe(
        Effect.provide(layer({ endpoint, timeout: "10 seconds", pullTimeout: "10 seconds" })),
        Effect.flip,
        Effect.ensuring(Effect.promise(() => close(server)))
      )
      expect(error.reason).toBe("NotFound")
      expect(error.message).toContain("HTTP 404")
    }), 30_000)

  it.live("100 error answers in a row, read whole, each keep their reason (their sockets are handed back)", () =>
    Effect.gen(function* () {
      const { endpoint, server } = yield* Effect.promise(() => serve((_req, res) => {
        res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ message: "No such container" }))
      }))
      const reasons = yield* Effect.flatMap(DockerEngine, (d) =>
        Effect.forEach(Array.from({ length: 100 }, (_, i) => `c${i}`), (id) => Effect.flip(d.inspectContainer(id)).pipe(Effect.map((e) => e.reason)), { concurrency: 8 })).pipe(
        Effect.provide(layer({ endpoint, timeout: "2 seconds", pullTimeout: "2 seconds" })),
        Effect.ensuring(Effect.promise(() => close(server)))
      )
      expect(new Set(reasons)).toEqual(new Set(["NotFound"]))
      expect(reasons).toHaveLength(100)
    }), 30_000)

  it.live("40 calls interrupted while the Engine stalls give their sockets up: the next call is answered at once", () =>
    Effect.gen(function* () {
      const { endpoint, server } = yield* Effect.promise(() => serve((req, res) => {
        if (req.url?.includes("/_ping")) res.writeHead(200).end("OK")
        // Anything else: headers never come.
      }))
      const started = yield* Effect.flatMap(DockerEngine, (d) =>
        Effect.gen(function* () {
          yield* Effect.forEach(Array.from({ length: 40 }, (_, i) => `c${i}`), (id) => Effect.either(Effect.timeout(d.inspectContainer(id), "200 millis")), { concurrency: "unbounded" })
          const t = Date.now()
          yield* d.ping
          return Date.now() - t
        })).pipe(
        Effect.provide(layer({ endpoint, timeout: "20 seconds", pullTimeout: "20 seconds" })),
        Effect.ensuring(Effect.promise(() => close(server)))
      )
      expect(started).toBeLessThan(2_000)
    }), 30_000)

  it.live("a pull passes over progress lines that are not objects; a progress callback that throws fails the call, not the process", () =>
    Effect.gen(function* () {
      const { endpoint, server } = yield* Effect.promise(() => serve((_req, res) => {
        res.writeHead(200, { "Content-Type": "application/json" }).end('null\n7\n"text"\n{"status":"Done"}\n')
      }))
      const lines: Array<string> = []
      const [ok, thrown] = yield* Effect.flatMap(DockerEngine, (d) =>
        Effect.all([
          Effect.either(d.pullImage("ok:1", (l) => lines.push(l))),
          Effect.exit(d.pullImage("ok:1", () => { throw new Error("the caller's own bug") }))
        ])).pipe(
        Effect.provide(layer({ endpoint, timeout: "5 seconds", pullTimeout: "5 seconds" })),
        Effect.ensuring(Effect.promise(() => close(server)))
      )
      expect(ok._tag).toBe("Right")
      expect(lines).toEqual(["Done"])
      expect(thrown._tag === "Failure" && String(thrown.cause)).toContain("the caller's own bug")
    }), 30_000)
})
