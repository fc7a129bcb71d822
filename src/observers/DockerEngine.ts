/**
 * A thin Docker Engine API client over the socket in DOCKER_HOST, spoken with
 * node's http (as DockerStreams.ts speaks the streaming calls); responses
 * decoded with effect/Schema. The observer reads through it and the executor
 * acts through it.
 *
 * Why not @effect/platform's HTTP client (Kubernetes is spoken with it): in a
 * command's fresh process it cost about 1.7 ms and 200 KB of garbage per
 * call, against about 0.2 ms here, and a plan asks the Engine 2 calls per
 * bottle and 9 more (a no-op apply of 20 bottles spent 90 ms more on it).
 * Each call here is one Effect.async: its own timer bounds the whole call,
 * answer included, and interrupting it destroys the request.
 */
import { Agent, request as httpRequest, type ClientRequest, type IncomingMessage } from "node:http"
import { StringDecoder } from "node:string_decoder"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import type { Endpoint } from "./endpoint.js"

/** The most bottle reads of one answer (a list of a few thousand containers is a few MiB). */
const MAX_BODY = 64 * 1024 * 1024

/** Every Engine since Docker 20.10 (and Podman's compatible socket) speaks this version. */
export const API_VERSION = "v1.41"

export type DockerErrorReason = "NotFound" | "Conflict" | "InUse" | "InProgress" | "Unreachable" | "Timeout" | "Server" | "BadResponse" | "BadRequest"

/** A failed Engine API call, with the reason callers may absorb. */
export class DockerError extends Data.TaggedError("DockerError")<{
  readonly reason: DockerErrorReason
  readonly endpoint: string
  readonly method: string
  readonly path: string
  readonly status?: number
  readonly detail: string
}> {
  override get message(): string {
    if (this.reason === "Unreachable") return `cannot reach the Docker Engine at ${this.endpoint}: ${this.detail}`
    if (this.reason === "Timeout") return `the Docker Engine at ${this.endpoint} did not answer ${this.method} ${this.path} within ${this.detail}`
    return `${this.method} ${this.path}: ${this.status ?? ""} ${this.detail}`.replace(/ {2,}/g, " ")
  }
}

/** The system error under a transport failure (`connect ENOENT /var/run/docker.sock`), when there is one. */
const causeText = (cause: unknown): string | undefined => {
  if (cause instanceof Error) {
    const code = (cause as NodeJS.ErrnoException).code
    return code !== undefined && !cause.message.includes(code) ? `${code}: ${cause.message}` : cause.message
  }
  return undefined
}

const Labels = Schema.NullishOr(Schema.Record({ key: Schema.String, value: Schema.String }))

export const ContainerSummary = Schema.Struct({
  Id: Schema.String,
  Names: Schema.Array(Schema.String),
  Image: Schema.String,
  ImageID: Schema.String,
  Labels,
  State: Schema.String,
  NetworkSettings: Schema.optional(Schema.NullishOr(Schema.Struct({
    Networks: Schema.optional(Schema.NullishOr(Schema.Record({ key: Schema.String, value: Schema.Struct({ IPAddress: Schema.optional(Schema.String) }) })))
  })))
})
export type ContainerSummary = typeof ContainerSummary.Type

export const NetworkSummary = Schema.Struct({
  Id: Schema.String,
  Name: Schema.String,
  Labels,
  Driver: Schema.optional(Schema.NullishOr(Schema.String)),
  Internal: Schema.optional(Schema.Boolean),
  Options: Schema.optional(Labels),
  IPAM: Schema.optional(Schema.NullishOr(Schema.Struct({
    Config: Schema.optional(Schema.NullishOr(Schema.Array(Schema.Struct({ Subnet: Schema.optional(Schema.String), Gateway: Schema.optional(Schema.String) }))))
  })))
})
export type NetworkSummary = typeof NetworkSummary.Type

const VolumeList = Schema.Struct({ Volumes: Schema.NullishOr(Schema.Array(Schema.Struct({ Name: Schema.String, Labels }))) })
export type VolumeSummary = { readonly Name: string; readonly Labels?: Record<string, string> | null | undefined }

export const ImageSummary = Schema.Struct({ Id: Schema.String, RepoTags: Schema.optional(Schema.NullishOr(Schema.Array(Schema.String))) })
export type ImageSummary = typeof ImageSummary.Type

const StringList = Schema.NullishOr(Schema.Array(Schema.String))

/** Container inspect: what the fence comparison reads (src/resources/fence.ts) and a state. */
export const ContainerInspect = Schema.Struct({
  Id: Schema.String,
  Name: Schema.optional(Schema.String),
  Image: Schema.optional(Schema.String),
  State: Schema.optional(Schema.NullishOr(Schema.Struct({ Status: Schema.optional(Schema.String), ExitCode: Schema.optional(Schema.Number), StartedAt: Schema.optional(Schema.String), FinishedAt: Schema.optional(Schema.String) }))),
  Config: Schema.optional(Schema.NullishOr(Schema.Struct({
    Image: Schema.optional(Schema.String),
    Hostname: Schema.optional(Schema.String),
    User: Schema.optional(Schema.String),
    Env: Schema.optional(StringList),
    Cmd: Schema.optional(StringList),
    Entrypoint: Schema.optional(Schema.NullishOr(Schema.Union(Schema.Array(Schema.String), Schema.String)))
  }))),
  HostConfig: Schema.optional(Schema.NullishOr(Schema.Record({ key: Schema.String, value: Schema.Unknown }))),
  Mounts: Schema.optional(Schema.NullishOr(Schema.Array(Schema.Struct({
    Type: Schema.optional(Schema.String),
    Name: Schema.optional(Schema.String),
    Source: Schema.optional(Schema.String),
    Destination: Schema.optional(Schema.String),
    RW: Schema.optional(Schema.Boolean)
  })))),
  NetworkSettings: Schema.optional(Schema.NullishOr(Schema.Struct({
    Networks: Schema.optional(Schema.NullishOr(Schema.Record({
      key: Schema.String,
      value: Schema.NullishOr(Schema.Struct({ Aliases: Schema.optional(StringList), IPAddress: Schema.optional(Schema.String), Gateway: Schema.optional(Schema.String) }))
    })))
  })))
})
export type ContainerInspect = typeof ContainerInspect.Type

/** Image inspect: the defaults a container takes from its image. */
export const ImageInspect = Schema.Struct({
  Id: Schema.String,
  Config: Schema.optional(Schema.NullishOr(Schema.Struct({
    User: Schema.optional(Schema.String),
    Env: Schema.optional(StringList),
    Cmd: Schema.optional(StringList),
    Entrypoint: Schema.optional(Schema.NullishOr(Schema.Union(Schema.Array(Schema.String), Schema.String))),
    Volumes: Schema.optional(Schema.NullishOr(Schema.Record({ key: Schema.String, value: Schema.Unknown })))
  })))
})
export type ImageInspect = typeof ImageInspect.Type

/** `GET /version`: which engine answers (Docker, or Podman's compatible socket). */
export const EngineVersion = Schema.Struct({
  Version: Schema.optional(Schema.String),
  ApiVersion: Schema.optional(Schema.String),
  Components: Schema.optional(Schema.NullishOr(Schema.Array(Schema.Struct({ Name: Schema.String, Version: Schema.optional(Schema.String) }))))
})
export type EngineVersion = typeof EngineVersion.Type

/** Podman's own API, beside its Docker-compatible one. */
export const LIBPOD = "/v4.0.0/libpod"
export const PodmanInfo = Schema.Struct({
  host: Schema.Struct({
    networkBackend: Schema.optional(Schema.String),
    security: Schema.optional(Schema.Struct({ rootless: Schema.optional(Schema.Boolean) }))
  })
})
export type PodmanInfo = typeof PodmanInfo.Type
const PodmanCreated = Schema.Struct({ id: Schema.String })

const WaitResult = Schema.Struct({ StatusCode: Schema.Number })
const Created = Schema.Struct({ Id: Schema.String })
const ErrorBody = Schema.Struct({ message: Schema.String })

export type Filters = Readonly<Record<string, ReadonlyArray<string>>>

export interface DockerEngineShape {
  readonly endpoint: string
  readonly ping: Effect.Effect<void, DockerError>
  readonly listContainers: (filters: Filters) => Effect.Effect<ReadonlyArray<ContainerSummary>, DockerError>
  readonly listNetworks: (filters: Filters) => Effect.Effect<ReadonlyArray<NetworkSummary>, DockerError>
  readonly listVolumes: (filters: Filters) => Effect.Effect<ReadonlyArray<VolumeSummary>, DockerError>
  readonly listImages: Effect.Effect<ReadonlyArray<ImageSummary>, DockerError>
  readonly createContainer: (name: string, body: unknown) => Effect.Effect<string, DockerError>
  readonly startContainer: (id: string) => Effect.Effect<void, DockerError>
  readonly removeContainer: (id: string) => Effect.Effect<void, DockerError>
  readonly createNetwork: (body: unknown) => Effect.Effect<string, DockerError>
  readonly connectNetwork: (network: string, container: string, aliases: ReadonlyArray<string>) => Effect.Effect<void, DockerError>
  readonly removeNetwork: (id: string) => Effect.Effect<void, DockerError>
  readonly removeVolume: (name: string) => Effect.Effect<void, DockerError>
  readonly version: Effect.Effect<EngineVersion, DockerError>
  /** Podman only: its network backend and whether it runs rootless. */
  readonly podmanInfo: Effect.Effect<PodmanInfo, DockerError>
  /** Podman only: a network made through Podman's own API (what the compatible API cannot ask for: no DNS, no gateway). */
  readonly createPodmanNetwork: (body: unknown) => Effect.Effect<string, DockerError>
  readonly inspectContainer: (id: string) => Effect.Effect<ContainerInspect, DockerError>
  readonly inspectImage: (id: string) => Effect.Effect<ImageInspect, DockerError>
  /** Stops a container (SIGTERM, then SIGKILL after `seconds`); already stopped is success. */
  readonly stopContainer: (id: string, seconds: number) => Effect.Effect<void, DockerError>
  /** Waits for a container to exit and returns its exit code, within `bound`. */
  readonly waitContainer: (id: string, bound: Duration.DurationInput) => Effect.Effect<number, DockerError>
  /** A stopped container's output (stdout and stderr, demultiplexed), at most `limit` bytes of each. */
  readonly containerOutput: (id: string, limit: number) => Effect.Effect<{ readonly stdout: string; readonly stderr: string }, DockerError>
  /** Pulls an image, handing each progress line to `progress`. */
  readonly pullImage: (ref: string, progress: (line: string) => void) => Effect.Effect<void, DockerError>
}

export class DockerEngine extends Context.Tag("bottle/DockerEngine")<DockerEngine, DockerEngineShape>() {}

export interface DockerEngineOptions {
  readonly endpoint: Endpoint
  /** Bound on every call but pulls. */
  readonly timeout: Duration.DurationInput
  readonly pullTimeout: Duration.DurationInput
}

/** Splits `name:tag` (keeping registry ports and digests intact) for the pull API. */
export const splitImageRef = (ref: string): { readonly image: string; readonly tag: string } => {
  if (ref.includes("@")) return { image: ref, tag: "" }
  const slash = ref.lastIndexOf("/")
  const colon = ref.lastIndexOf(":")
  return colon > slash ? { image: ref.slice(0, colon), tag: ref.slice(colon + 1) } : { image: ref, tag: "latest" }
}

/**
 * What a call makes of a 2xx answer as it arrives: `data` sees each chunk
 * and may refuse the answer (the call then stops reading it); `end` gives
 * the result once it is whole. Either may throw: the call then fails as a
 * defect, never an uncaught exception in one of node's event handlers.
 */
interface Reader<A> {
  readonly data: (chunk: Buffer) => DockerError | undefined
  readonly end: () => Either.Either<A, DockerError>
}

/** The most bottle reads of an error answer: its message is all bottle wants of it. */
const MAX_ERROR_BODY = 64 * 1024

const make = (opts: DockerEngineOptions, agent: Agent): DockerEngineShape => {
  const endpoint = opts.endpoint.display
  // Podman's own API (`/v4.0.0/libpod/…`) is addressed as is; everything else speaks API_VERSION.
  const url = (path: string) => `${opts.endpoint.baseUrl}${path.startsWith(LIBPOD) ? "" : `/${API_VERSION}`}${path}`
  const fail = (method: string, path: string, reason: DockerErrorReason, detail: string, status?: number) =>
    new DockerError({ reason, endpoint, method, path, detail, ...(status !== undefined ? { status } : {}) })

  const reasonFor = (status: number, message: string): DockerErrorReason =>
    status === 404 ? "NotFound"
      : status === 409 && /already in progress/i.test(message) ? "InProgress"
      : status === 409 ? (/in use|active endpoints|is running/i.test(message) ? "InUse" : "Conflict")
      : status === 403 && /active endpoints|in use/i.test(message) ? "InUse"
      : status === 400 ? "BadRequest"
      // Podman answers 500 where Docker answers 409: a name taken, or a network still in use.
      : status === 500 && /is being used|associated containers/i.test(message) ? "InUse"
      : status === 500 && /already exists|is already in use|already used/i.test(message) ? "Conflict"
      : "Server"

  /** The Engine's message, with what to do about it where the message alone leaves a person stuck. */
  const explain = (message: string) =>
    /non-overlapping IPv4 address pool/i.test(message)
      ? `${message} (the Engine's address pools are full: remove networks you no longer need, or give dockerd more room with default-address-pools in /etc/docker/daemon.json)`
      : message

  /** An error answer's message (its JSON `message`, else the status). */
  const errorMessage = (status: number, body: Buffer | undefined) => {
    if (body !== undefined) {
      try {
        return Schema.decodeUnknownSync(ErrorBody)(JSON.parse(body.toString("utf8"))).message
      } catch { /* not the Engine's error shape */ }
    }
    return `HTTP ${status}`
  }

  /** A bound as a timer's delay (node fires a longer one at once; the settings cap bounds at a day anyway). */
  const millis = (d: Duration.DurationInput) => Math.min(Duration.toMillis(Duration.decode(d)), 2 ** 31 - 1)

  /**
   * One call: sends the request and reads the answer through `reader`, all
   * within `timeout`, answer included, so an Engine that sends headers and
   * then stalls cannot hang bottle. A non-2xx answer becomes a DockerError
   * carrying the Engine's message. Reading an answer to its end hands the
   * keep-alive socket back; an answer refused part way, a timeout or an
   * interruption destroys the request (and its socket).
   */
  const exchange = <A>(method: "GET" | "POST" | "DELETE", path: string, body: unknown, timeout: Duration.DurationInput, reader: (status: number) => Reader<A>) =>
    Effect.async<A, DockerError>((resume) => {
      let settled = false
      let responded = false
      let req: ClientRequest | undefined
      let timer: ReturnType<typeof setTimeout> | undefined
      const finish = (effect: Effect.Effect<A, DockerError>) => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        resume(effect)
      }
      const settle = (result: Either.Either<A, DockerError>) =>
        finish(Either.isRight(result) ? Effect.succeed(result.right) : Effect.fail(result.left))
      const refuse = (e: DockerError) => {
        settle(Either.left(e))
        req?.destroy()
      }
      /** Runs a handler's work; what it throws ends the call as a defect (and the request), not the process. */
      const guarded = (f: () => void) => {
        try {
          f()
        } catch (e) {
          finish(Effect.die(e))
          req?.destroy()
        }
      }
      try {
        const payload = body === undefined ? undefined : JSON.stringify(body)
        req = httpRequest(url(path), {
          agent,
          method,
          headers: payload === undefined ? {} : { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(payload) }
        }, (res) => guarded(() => respond(res)))
        req.on("error", (e) => settle(Either.left(fail(method, path, responded ? "BadResponse" : "Unreachable", causeText(e) ?? e.message))))
        // Closed with neither an answer nor an error (an upgrade node will not take, say): not left to the timer.
        req.on("close", () => { if (!responded) settle(Either.left(fail(method, path, "Unreachable", "the connection closed before an answer"))) })
        req.end(payload)
      } catch (e) {
        // A request node refuses to send (a path with characters it will not put on the wire, a body JSON cannot hold).
        settle(Either.left(fail(method, path, "BadRequest", e instanceof Error ? e.message : String(e))))
        return
      }
      timer = setTimeout(() => refuse(fail(method, path, "Timeout", Duration.format(Duration.decode(timeout)))), millis(timeout))
      const sent = req
      return Effect.sync(() => {
        settled = true
        clearTimeout(timer)
        sent.destroy()
      })

      function respond(res: IncomingMessage) {
        responded = true
        const status = res.statusCode ?? 0
        if (status >= 200 && status < 300 || status === 304) {
          const r = reader(status)
          res.on("data", (chunk: Buffer) => guarded(() => {
            const refused = r.data(chunk)
            if (refused !== undefined) refuse(refused)
          }))
          res.on("end", () => guarded(() => settle(r.end())))
          // An answer cut off (the connection reset or closed part way).
          res.on("error", (e) => settle(Either.left(fail(method, path, "BadResponse", e.message))))
          res.on("close", () => settle(Either.left(fail(method, path, "BadResponse", "the answer ended early"))))
        } else {
          const chunks: Array<Buffer> = []
          let size = 0
          // The status decides the reason (NotFound, InUse, …) even when the body never comes whole.
          const refused = (whole: boolean) => {
            const message = errorMessage(status, whole ? Buffer.concat(chunks, size) : undefined)
            return fail(method, path, reasonFor(status, message), explain(message), status)
          }
          res.on("data", (chunk: Buffer) => {
            size += chunk.length
            if (size > MAX_ERROR_BODY) refuse(refused(false))
            else chunks.push(chunk)
          })
          res.on("end", () => guarded(() => settle(Either.left(refused(true)))))
          res.on("error", () => settle(Either.left(refused(false))))
          res.on("close", () => settle(Either.left(refused(false))))
        }
      }
    })

  /** The whole answer, but no more than `limit` bytes: a broken or hostile engine cannot make bottle hold more. */
  const bytes = (method: string, path: string, limit: number): Reader<Buffer> => {
    const chunks: Array<Buffer> = []
    let size = 0
    return {
      data: (chunk) => {
        size += chunk.length
        if (size > limit) return fail(method, path, "BadResponse", `the answer is larger than ${limit} bytes`)
        chunks.push(chunk)
        return undefined
      },
      end: () => Either.right(Buffer.concat(chunks, size))
    }
  }

  /** A JSON answer decoded with `schema` (nothing is decoded without one, or from a 204 or 304; any other empty answer is refused). */
  const call = <A, I>(method: "GET" | "POST" | "DELETE", path: string, schema: Schema.Schema<A, I> | undefined, body?: unknown, timeout: Duration.DurationInput = opts.timeout) =>
    exchange(method, path, body, timeout, (status) => {
      const whole = bytes(method, path, MAX_BODY)
      return {
        data: whole.data,
        end: (): Either.Either<A, DockerError> => {
          if (schema === undefined || status === 204 || status === 304) return Either.right(undefined as A)
          const text = Either.getOrThrow(whole.end()).toString("utf8")
          let json: unknown
          try {
            json = JSON.parse(text)
          } catch (e) {
            return Either.left(fail(method, path, "BadResponse", `unexpected response: not JSON (${(e as Error).message})`))
          }
          return Either.mapLeft(Schema.decodeUnknownEither(schema)(json), (e) => fail(method, path, "BadResponse", `unexpected response: ${e.message.split("\n")[0]}`))
        }
      }
    })
  const q = (filters: Filters) => `filters=${encodeURIComponent(JSON.stringify(filters))}`

  /** Pulls an image; the Engine sends one JSON line per step of progress, and reports a failed pull inside its 200 answer. */
  const pullImage = (ref: string, progress: (line: string) => void) => {
    const { image, tag } = splitImageRef(ref)
    const path = `/images/create?fromImage=${encodeURIComponent(image)}${tag ? `&tag=${encodeURIComponent(tag)}` : ""}`
    return exchange("POST", path, undefined, opts.pullTimeout, (): Reader<void> => {
      let rest = ""
      // Characters split across chunks are joined before they are read.
      const decoder = new StringDecoder("utf8")
      const text = (s: unknown) => (typeof s === "string" ? s : undefined)
      const line = (raw: string): DockerError | undefined => {
        if (raw.trim() === "") return undefined
        let parsed: unknown
        try { parsed = JSON.parse(raw) } catch { return undefined }
        // Only an object is a step of progress: anything else (null, a number) is passed over.
        if (parsed === null || typeof parsed !== "object") return undefined
        const msg = parsed as Record<string, unknown>
        if (msg["error"]) return fail("POST", path, "NotFound", `cannot pull ${ref}: ${String(msg["error"])}`)
        progress([text(msg["id"]), text(msg["status"]), text(msg["progress"])].filter(Boolean).join(" "))
        return undefined
      }
      return {
        data: (chunk) => {
          const lines = (rest + decoder.write(chunk)).split("\n")
          rest = lines.pop() ?? ""
          for (const l of lines) {
            const refused = line(l)
            if (refused !== undefined) return refused
          }
          // A line without end is still a line: it cannot grow past what one progress step says.
          return rest.length > MAX_ERROR_BODY ? fail("POST", path, "BadResponse", `a progress line longer than ${MAX_ERROR_BODY} characters`) : undefined
        },
        end: () => {
          const refused = line(rest + decoder.end())
          return refused === undefined ? Either.void : Either.left(refused)
        }
      }
    })
  }

  /** Splits the Engine's multiplexed stream (8-byte frame headers: stream, 0, 0, 0, size) into stdout and stderr. */
  const demultiplex = (bytes: Buffer, limit: number) => {
    const out: Array<Buffer> = []
    const err: Array<Buffer> = []
    let i = 0
    while (i + 8 <= bytes.length) {
      const kind = bytes[i]!
      const size = bytes.readUInt32BE(i + 4)
      const frame = bytes.subarray(i + 8, i + 8 + size)
      ;(kind === 2 ? err : out).push(frame)
      i += 8 + size
    }
    const text = (bs: Array<Buffer>) => Buffer.concat(bs).subarray(0, limit).toString("utf8")
    return { stdout: text(out), stderr: text(err) }
  }

  const containerOutput = (id: string, limit: number) => {
    const path = `/containers/${encodeURIComponent(id)}/logs?stdout=true&stderr=true`
    return exchange("GET", path, undefined, opts.timeout, () => bytes("GET", path, 2 * limit + 1024 * 1024)).pipe(
      Effect.map((b) => demultiplex(b, limit))
    )
  }

  return DockerEngine.of({
    endpoint,
    ping: call("GET", "/_ping", undefined),
    listContainers: (filters) => call("GET", `/containers/json?all=true&${q(filters)}`, Schema.Array(ContainerSummary)),
    listNetworks: (filters) => call("GET", `/networks?${q(filters)}`, Schema.Array(NetworkSummary)),
    listVolumes: (filters) => call("GET", `/volumes?${q(filters)}`, VolumeList).pipe(Effect.map((v) => v.Volumes ?? [])),
    listImages: call("GET", "/images/json", Schema.Array(ImageSummary)),
    createContainer: (name, body) => call("POST", `/containers/create?name=${encodeURIComponent(name)}`, Created, body).pipe(Effect.map((c) => c.Id)),
    startContainer: (id) => call("POST", `/containers/${encodeURIComponent(id)}/start`, undefined),
    removeContainer: (id) => call("DELETE", `/containers/${encodeURIComponent(id)}?force=true&v=true`, undefined),
    createNetwork: (body) => call("POST", "/networks/create", Created, body).pipe(Effect.map((c) => c.Id)),
    connectNetwork: (network, container, aliases) =>
      call("POST", `/networks/${encodeURIComponent(network)}/connect`, undefined, { Container: container, EndpointConfig: { Aliases: aliases } }),
    removeNetwork: (id) => call("DELETE", `/networks/${encodeURIComponent(id)}`, undefined),
    removeVolume: (name) => call("DELETE", `/volumes/${encodeURIComponent(name)}`, undefined),
    version: call("GET", "/version", EngineVersion),
    podmanInfo: call("GET", `${LIBPOD}/info`, PodmanInfo),
    createPodmanNetwork: (body) => call("POST", `${LIBPOD}/networks/create`, PodmanCreated, body).pipe(Effect.map((c) => c.id)),
    inspectContainer: (id) => call("GET", `/containers/${encodeURIComponent(id)}/json`, ContainerInspect),
    inspectImage: (id) => call("GET", `/images/${encodeURIComponent(id)}/json`, ImageInspect),
    stopContainer: (id, seconds) =>
      call("POST", `/containers/${encodeURIComponent(id)}/stop?t=${seconds}`, undefined, undefined, Duration.sum(opts.timeout, Duration.seconds(seconds))),
    waitContainer: (id, bound) => call("POST", `/containers/${encodeURIComponent(id)}/wait`, WaitResult, undefined, bound).pipe(Effect.map((r) => r.StatusCode)),
    containerOutput,
    pullImage
  })
}

/** The live client: one keep-alive agent to the Engine's socket, shared by every call, destroyed with the layer. */
export const layer = (opts: DockerEngineOptions): Layer.Layer<DockerEngine> =>
  Layer.scoped(DockerEngine, Effect.map(
    Effect.acquireRelease(
      Effect.sync(() => new Agent({
        keepAlive: true,
        maxSockets: 32,
        ...(opts.endpoint.socketPath !== undefined ? { socketPath: opts.endpoint.socketPath } : {}),
        // A TLS name, never used here (plain HTTP): given, it spares node's agent from working one out of the
        // Host header at every request, which first compiles node's IPv6 pattern (about 13 ms of every start).
        servername: ""
      } as ConstructorParameters<typeof Agent>[0])),
      (agent) => Effect.sync(() => agent.destroy())
    ),
    (agent) => make(opts, agent)
  ))
