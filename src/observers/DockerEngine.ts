/**
 * A thin Docker Engine API client over the socket in DOCKER_HOST, spoken with
 * @effect/platform's HTTP client; responses decoded with effect/Schema. The
 * observer reads through it and the executor acts through it.
 */
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import type { Endpoint } from "./endpoint.js"
import { readBoundedBytes, readBoundedText } from "./httpBody.js"

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
  State: Schema.optional(Schema.NullishOr(Schema.Struct({ Status: Schema.optional(Schema.String), ExitCode: Schema.optional(Schema.Number) }))),
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

const make = (opts: DockerEngineOptions) =>
  Effect.gen(function* () {
    const client = yield* HttpClient.HttpClient
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

    /**
     * Reads a whole answer, but no more than `limit` bytes: a broken or
     * hostile engine cannot make bottle hold more. Reading it also frees the
     * keep-alive socket: an unread answer keeps it, and once maxSockets of
     * them are held every later call waits until it times out.
     */
    const badBody = (method: string, path: string) => (detail: string) => fail(method, path, "BadResponse", detail)
    const readText = (res: HttpClientResponse.HttpClientResponse, method: string, path: string, limit = MAX_BODY) =>
      readBoundedText(res, limit, badBody(method, path))

    /** Sends one request; non-2xx answers become DockerErrors carrying the Engine's message. Not bounded: callers bound the whole call. */
    const send = (request: HttpClientRequest.HttpClientRequest, path: string) =>
      client.execute(request).pipe(
        Effect.mapError((e) => fail(request.method, path, e._tag === "RequestError" ? "Unreachable" : "BadResponse", causeText(e.cause) ?? e.message)),
        Effect.flatMap((res) =>
          res.status >= 200 && res.status < 300 || res.status === 304
            ? Effect.succeed(res)
            : readText(res, request.method, path, 64 * 1024).pipe(
              Effect.map((text) => {
                try {
                  return Schema.decodeUnknownSync(ErrorBody)(JSON.parse(text)).message
                } catch {
                  return `HTTP ${res.status}`
                }
              }),
              Effect.orElseSucceed(() => `HTTP ${res.status}`),
              Effect.flatMap((message) => Effect.fail(fail(request.method, path, reasonFor(res.status, message), explain(message), res.status)))
            )
        )
      )

    /** Bounds a whole call, answer included, so an engine that sends headers and then stalls cannot hang bottle. */
    const bounded = (method: string, path: string, timeout: Duration.DurationInput) => <A>(eff: Effect.Effect<A, DockerError>) =>
      eff.pipe(Effect.timeoutFail({ duration: timeout, onTimeout: () => fail(method, path, "Timeout", Duration.format(Duration.decode(timeout))) }))

    const request = (method: "GET" | "POST" | "DELETE", path: string, body?: unknown) => {
      const req = HttpClientRequest.make(method)(url(path))
      return body === undefined ? req : HttpClientRequest.bodyUnsafeJson(req, body)
    }

    const call = <A, I>(method: "GET" | "POST" | "DELETE", path: string, schema: Schema.Schema<A, I> | undefined, body?: unknown, timeout: Duration.DurationInput = opts.timeout) =>
      send(request(method, path, body), path).pipe(
        Effect.flatMap((res) => readText(res, method, path).pipe(Effect.map((text) => ({ res, text })))),
        Effect.flatMap(({ res, text }) => {
          if (schema === undefined || res.status === 204 || res.status === 304) return Effect.succeed(undefined as A)
          let json: unknown
          try {
            json = JSON.parse(text)
          } catch (e) {
            return Effect.fail(fail(method, path, "BadResponse", `unexpected response: not JSON (${(e as Error).message})`))
          }
          // Decoded in one step, not as an Effect: a no-op apply of 20 bottles decodes 47 answers.
          const decoded = Schema.decodeUnknownEither(schema)(json)
          return Either.isRight(decoded)
            ? Effect.succeed(decoded.right)
            : Effect.fail(fail(method, path, "BadResponse", `unexpected response: ${decoded.left.message.split("\n")[0]}`))
        }),
        bounded(method, path, timeout)
      )
    const q = (filters: Filters) => `filters=${encodeURIComponent(JSON.stringify(filters))}`

    const pullImage = (ref: string, progress: (line: string) => void) => {
      const { image, tag } = splitImageRef(ref)
      const path = `/images/create?fromImage=${encodeURIComponent(image)}${tag ? `&tag=${encodeURIComponent(tag)}` : ""}`
      const req = HttpClientRequest.make("POST")(url(path))
      return send(req, path).pipe(
        Effect.flatMap((res) =>
          res.stream.pipe(
            Stream.decodeText(),
            Stream.splitLines,
            Stream.mapError((e) => fail("POST", path, "BadResponse", String(e))),
            Stream.runForEach((line) => {
              if (line.trim() === "") return Effect.void
              let msg: { error?: string; status?: string; progress?: string; id?: string } = {}
              try { msg = JSON.parse(line) } catch { return Effect.void }
              // The Engine reports a failed pull inside a 200 response.
              if (msg.error) return Effect.fail(fail("POST", path, "NotFound", `cannot pull ${ref}: ${msg.error}`))
              progress([msg.id, msg.status, msg.progress].filter(Boolean).join(" "))
              return Effect.void
            }),
            Effect.scoped
          )
        ),
        bounded("POST", path, opts.pullTimeout)
      )
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
      return send(request("GET", path), path).pipe(
        Effect.flatMap((res) => readBoundedBytes(res, 2 * limit + 1024 * 1024, badBody("GET", path))),
        Effect.map((bytes) => demultiplex(bytes, limit)),
        bounded("GET", path, opts.timeout)
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
  })

/** The live client: one keep-alive agent to the Engine's socket, shared by every call. */
export const layer = (opts: DockerEngineOptions): Layer.Layer<DockerEngine> =>
  Layer.effect(DockerEngine, make(opts)).pipe(
    Layer.provide(NodeHttpClient.layerWithoutAgent),
    Layer.provide(NodeHttpClient.makeAgentLayer({
      keepAlive: true,
      maxSockets: 32,
      ...(opts.endpoint.socketPath !== undefined ? { socketPath: opts.endpoint.socketPath } : {}),
      // A TLS name, never used here (plain HTTP): given, it spares node's agent from working one out of the
      // Host header at every request, which first compiles node's IPv6 pattern (about 13 ms of every start).
      servername: ""
    } as Parameters<typeof NodeHttpClient.makeAgentLayer>[0]))
  )
