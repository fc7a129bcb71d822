/**
 * Observes the Docker side: compose projects and prefixed leftovers, in a
 * constant number of list calls whatever the number of bottles.
 */
import { Effect } from "effect"
import { Compose } from "../resources/labels.js"
import type { DockerSnapshot, ObservedContainer, ObservedNetwork, Source } from "../resources/observed.js"
import { DockerEngine, type ContainerSummary, type NetworkSummary } from "./DockerEngine.js"

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

const toNetwork = (n: NetworkSummary): ObservedNetwork => ({ id: n.Id, name: n.Name, labels: n.Labels ?? {}, internal: n.Internal ?? false })

/**
 * Six list calls: containers and networks each by compose label and by name
 * prefix (a leftover may have either), compose volumes, and images. The
 * planner filters by exact prefix; the Engine's name filter is a substring match.
 */
export const observeDocker = (prefix: string) =>
  Effect.gen(function* () {
    const docker = yield* DockerEngine
    const [labelled, named, netsLabelled, netsNamed, volumes, images] = yield* Effect.all(
      [
        docker.listContainers({ label: [Compose.project] }),
        docker.listContainers({ name: [prefix] }),
        docker.listNetworks({ label: [Compose.project] }),
        docker.listNetworks({ name: [prefix] }),
        docker.listVolumes({ label: [Compose.project] }),
        docker.listImages
      ],
      { concurrency: "unbounded" }
    )
    const imageIds: Record<string, string> = {}
    for (const i of images) for (const t of i.RepoTags ?? []) if (t !== "<none>:<none>") imageIds[t] = i.Id
    const snapshot: DockerSnapshot = {
      endpoint: docker.endpoint,
      containers: byId((c) => c.id, labelled.map(toContainer), named.map(toContainer)),
      networks: byId((n) => n.id, netsLabelled.map(toNetwork), netsNamed.map(toNetwork)),
      volumes: volumes.map((v) => ({ name: v.Name, labels: v.Labels ?? {} })),
      images: imageIds
    }
    return snapshot
  })

/** The observer as a Source: a failure is recorded, never turned into an empty snapshot. */
export const dockerSource = (prefix: string): Effect.Effect<Source<DockerSnapshot>, never, DockerEngine> =>
  observeDocker(prefix).pipe(
    Effect.map((value): Source<DockerSnapshot> => ({ _tag: "Ok", value })),
    Effect.catchTag("DockerError", (e) => Effect.succeed<Source<DockerSnapshot>>({ _tag: "Failed", source: "docker", error: e.message }))
  )
