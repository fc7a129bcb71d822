/**
 * Observes the Docker side: compose projects and prefixed leftovers, in a
 * constant number of list calls whatever the number of bottles.
 */
import * as Effect from "effect/Effect"
import { inspectFacts, type ImageDefaults } from "../resources/fence.js"
import { normaliseImageRef } from "../resources/imageRef.js"
import { Bottle as BL, Compose, MANAGED_BY } from "../resources/labels.js"
import type { DockerSnapshot, EngineInfo, ObservedContainer, ObservedNetwork, Source } from "../resources/observed.js"
import { DockerEngine, type ContainerSummary, type DockerEngineShape, type ImageInspect, type NetworkSummary } from "./DockerEngine.js"

/** Inspections in flight at once: enough to keep the Engine busy, few enough not to crowd out other clients. */
const INSPECT_CONCURRENCY = 16

const byId = <A>(key: (a: A) => string, ...lists: ReadonlyArray<ReadonlyArray<A>>): ReadonlyArray<A> => {
  const seen = new Map<string, A>()
  for (const l of lists) for (const a of l) seen.set(key(a), a)
  return [...seen.values()]
}

const toContainer = (c: ContainerSummary): ObservedContainer => ({
  id: c.Id,
  name: (c.Names[0] ?? c.Id).replace(/^\//, ""),
  labels: c.Labels ?? {},
  state: c.State,
  image: c.Image,
  imageId: c.ImageID,
  ips: Object.fromEntries(Object.entries(c.NetworkSettings?.Networks ?? {}).flatMap(([k, v]) => (v.IPAddress ? [[k, v.IPAddress]] : [])))
})

const toNetwork = (n: NetworkSummary): ObservedNetwork => ({
  id: n.Id,
  name: n.Name,
  labels: n.Labels ?? {},
  internal: n.Internal ?? false,
  driver: n.Driver ?? "",
  options: n.Options ?? {},
  subnets: (n.IPAM?.Config ?? []).flatMap((c) => (c.Subnet !== undefined ? [{ subnet: c.Subnet, gateway: c.Gateway }] : []))
})

const imageDefaults = (i: ImageInspect): ImageDefaults => {
  const e = i.Config?.Entrypoint
  return {
    env: [...(i.Config?.Env ?? [])],
    cmd: i.Config?.Cmd ? [...i.Config.Cmd] : null,
    entrypoint: typeof e === "string" ? [e] : e ? [...e] : null,
    user: i.Config?.User ?? "",
    volumes: Object.keys(i.Config?.Volumes ?? {})
  }
}

export interface ObserveDockerOptions {
  /**
   * Inspect bottle's own containers (and their images), so the planner can
   * compare what fences them as observed. Plans need it; listings do not.
   */
  readonly inspect: boolean
}

/** What the Engine is: Docker or Podman, its version, and Podman's network backend. */
const engineInfo = (docker: DockerEngineShape) =>
  Effect.gen(function* () {
    const version = yield* docker.version
    const podman = (version.Components ?? []).some((c) => /podman/i.test(c.Name))
    const info = podman ? yield* docker.podmanInfo : undefined
    const engine: EngineInfo = {
      kind: podman ? "podman" : "docker",
      version: version.Version ?? "",
      ...(info !== undefined ? { networkBackend: info.host.networkBackend, rootless: info.host.security?.rootless } : {})
    }
    return engine
  })

/** The lists, then bottle's own containers and their images inspected. */
const listsAndInspections = (docker: DockerEngineShape, prefix: string, opts: ObserveDockerOptions) =>
  Effect.gen(function* () {
    const [labelled, named, nets, volumes, images, anyPrefix] = yield* Effect.all(
      [
        docker.listContainers({ label: [Compose.project] }),
        docker.listContainers({ name: [prefix] }),
        // Every network, not only bottle's: a new network's subnet must overlap none of them.
        docker.listNetworks({}),
        docker.listVolumes({ label: [Compose.project] }),
        docker.listImages,
        docker.listContainers({ label: [`${BL.managedBy}=${MANAGED_BY}`] })
      ],
      { concurrency: "unbounded" }
    )
    const imageIds: Record<string, string> = {}
    for (const i of images) for (const t of i.RepoTags ?? []) if (t !== "<none>:<none>") imageIds[normaliseImageRef(t)] = i.Id
    let containers = byId((c) => c.id, labelled.map(toContainer), named.map(toContainer))
    if (opts.inspect) {
      // Only what may be bottle's: the compose-label list also holds every other compose project's containers.
      const mine = (c: ObservedContainer) => c.labels[BL.managedBy] === MANAGED_BY || c.name.startsWith(`${prefix}-`)
      const inspected = yield* Effect.forEach(containers.filter(mine), (c) =>
        docker.inspectContainer(c.id).pipe(
          Effect.map((i) => [c.id, i] as const),
          // Removed since it was listed: nothing to compare.
          Effect.catchIf((e) => e.reason === "NotFound", () => Effect.succeed(undefined))
        ), { concurrency: INSPECT_CONCURRENCY })
      const byContainer = new Map(inspected.flatMap((x) => (x === undefined ? [] : [x])))
      const imageIds = [...new Set([...byContainer.keys()].map((id) => containers.find((c) => c.id === id)!.imageId).filter((i) => i !== ""))]
      const images = yield* Effect.forEach(imageIds, (id) =>
        docker.inspectImage(id).pipe(
          Effect.map((i) => [id, imageDefaults(i)] as const),
          Effect.catchIf((e) => e.reason === "NotFound", () => Effect.succeed(undefined))
        ), { concurrency: INSPECT_CONCURRENCY })
      const defaults = new Map(images.flatMap((x) => (x === undefined ? [] : [x])))
      containers = containers.map((c) => {
        const i = byContainer.get(c.id)
        if (i === undefined) return c
        const image = defaults.get(c.imageId)
        return { ...c, facts: inspectFacts(i, image), imageDefaults: image }
      })
    }
    return {
      containers,
      networks: nets.map(toNetwork),
      volumes: volumes.map((v) => ({ name: v.Name, labels: v.Labels ?? {} })),
      anyPrefix: anyPrefix.map(toContainer),
      images: imageIds
    }
  })

/**
 * Six list calls and the Engine's version (asked beside them): containers
 * by compose label and by name prefix (a leftover may have either), every
 * network (their subnets are what a new one must not overlap), compose
 * volumes, images, and every container with bottle's labels whatever its
 * prefix (for liveness). The planner filters by exact prefix; the Engine's
 * name filter is a substring match. Then bottle's own containers and their
 * images are inspected, concurrently and bounded, for what fences them.
 */
export const observeDocker = (prefix: string, opts: ObserveDockerOptions = { inspect: true }) =>
  Effect.gen(function* () {
    const docker = yield* DockerEngine
    // The Engine's version is asked beside the lists, not before them: it takes longer to answer (about
    // 30 ms on Docker 20.10, the lists 10), and the inspections need only the lists. Either failing fails both.
    const [engine, seen] = yield* Effect.all([engineInfo(docker), listsAndInspections(docker, prefix, opts)], { concurrency: 2 })
    const snapshot: DockerSnapshot = { endpoint: docker.endpoint, engine, ...seen }
    return snapshot
  })

/** The observer as a Source: a failure is recorded, never turned into an empty snapshot. */
export const dockerSource = (prefix: string, opts: ObserveDockerOptions = { inspect: true }): Effect.Effect<Source<DockerSnapshot>, never, DockerEngine> =>
  observeDocker(prefix, opts).pipe(
    Effect.map((value): Source<DockerSnapshot> => ({ _tag: "Ok", value })),
    Effect.catchTag("DockerError", (e) => Effect.succeed<Source<DockerSnapshot>>({ _tag: "Failed", source: "docker", error: e.message }))
  )
