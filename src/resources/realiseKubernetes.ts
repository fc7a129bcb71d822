/**
 * What a desired bottle means on Kubernetes: the objects one bottle is made
 * of, in the order they must be applied, and the ApplySet parent that owns
 * one install's set of them. Pure: no I/O.
 *
 * Per bottle: a ServiceAccount without a token; NetworkPolicies first (the
 * agent reaches its proxy, by its Service's address, and nothing else, not
 * even DNS; the proxy is reached by its agent alone and reaches only public
 * addresses on the allowed ports); a Secret for the agent's own secrets
 * (referenced, never written into a pod spec); ConfigMaps for the proxy's
 * policy and the agent's files; a PersistentVolumeClaim for its workspace;
 * the proxy as a Deployment and a Service; the agent as a one-replica
 * StatefulSet (or agent-sandbox's Sandbox), whose pod first proves its fence
 * from inside. Pods are hardened as the docker backend's containers are.
 */
import { createHash } from "node:crypto"
import type { DesiredBottle } from "./desired.js"
import { EGRESS_ADDON, EGRESS_ADDON_FILE, EGRESS_POLICY_FILE } from "./egressAddon.js"
import { EGRESS_LAUNCH, EGRESS_LAUNCH_COMMAND, EGRESS_LAUNCH_FILE } from "./egressLaunch.js"
import { parseAllowList } from "./egressRules.js"
import { hashOf } from "./hash.js"
import { PROBE_SCRIPT, probeImageFor, PUBLIC_ADDRESSES, REFUSED_HOST, type ProbeInput } from "./probeScript.js"
import { Bottle as BL, MANAGED_BY } from "./labels.js"
import { DEFAULT_MITMPROXY_IMAGE } from "./proxyImages.js"
import {
  AGENT_MOUNT,
  caEnv,
  dnsNamesFor,
  EGRESS_PORT,
  egressImageFor,
  placeholderOf,
  proxyEnv,
  renderEgressPolicy,
  renderPipelockConfig,
  secretDigests,
  stateDirPath,
  type RealiseContext,
  type StateDirSpec
} from "./realise.js"
import { byEnvName } from "./order.js"

/** A Kubernetes object as bottle writes it (validated against Kubernetes' schemas in the tests). */
export interface Manifest {
  readonly apiVersion: string
  readonly kind: string
  readonly metadata: {
    readonly name: string
    readonly namespace: string
    readonly labels: Readonly<Record<string, string>>
    readonly annotations: Readonly<Record<string, string>>
  }
  readonly [field: string]: unknown
}

export interface KubernetesContext {
  /** The namespace of the set (spec.namespace, default `bottle-<set>`); bottle never makes or deletes it. */
  readonly namespace: string
  /** The install's prefix: its ApplySet parent is named by it. */
  readonly prefix: string
  /** `bottle/<version>`: the ApplySet tooling bottle writes and accepts. */
  readonly tooling: string
  readonly egressImage: RealiseContext["egressImage"]
  /** uid:gid the proxy runs as. */
  readonly proxyUser: string
  /** gVisor, Kata: the pods' runtime class, when the cluster has one. */
  readonly runtimeClassName?: string | undefined
  /** The workspace claim's size. */
  readonly stateSize: string
  /** The cluster serves agent-sandbox's API: the agent is a `Sandbox` (its controller keeps one pod, stable), not a StatefulSet. */
  readonly sandboxApi?: boolean | undefined
  /** An image with python3 for the fence's gate and probes when the proxy's image has none (pipelock's). */
  readonly probeImage?: string | undefined
  /**
   * The bottle's own CA, when its proxy opens TLS to put a secret in (made by bottle, as for docker), and the
   * bundle the agent's clients trust: the host's CAs and this one, as the docker backend writes it.
   */
  readonly ca?: { readonly certPem: string; readonly keyPem: string; readonly bundlePem: string } | undefined
}

export const Applyset = {
  id: "applyset.kubernetes.io/id",
  partOf: "applyset.kubernetes.io/part-of",
  tooling: "applyset.kubernetes.io/tooling",
  containsGroupKinds: "applyset.kubernetes.io/contains-group-kinds"
} as const

/** On a pod template: the hash of the ConfigMaps and Secrets it reads, so a change to them rolls the pod. */
export const CONFIG_HASH = "dev.bottle.config-hash"

/** On a bottle's PersistentVolumeClaim when its spec says `preserve: true`: bottle never deletes that claim (like a `.preserve` dir). */
export const PRESERVE_ANNOTATION = "dev.bottle.preserve"

/** agent-sandbox's API (kubernetes-sigs/agent-sandbox), used for the agent when the cluster serves it. */
export const SANDBOX_API_VERSION = "agents.x-k8s.io/v1alpha1"

/** The kinds that run a bottle's pods (its agent's, its proxy's). */
export const WORKLOADS: ReadonlySet<string> = new Set(["StatefulSet", "Deployment", "Sandbox"])

/** The namespace of a Kubernetes bottle: its spec's, else its set's. */
export const kubeNamespace = (b: Pick<DesiredBottle, "set" | "kubernetes">): string => b.kubernetes?.namespace ?? `bottle-${b.set}`

/** The pod role label: which of a bottle's pods a selector means. */
export const ROLE_LABEL = "dev.bottle.role"

/** The pods the agent's fence holds: the agent's, and the probe `bottle verify` runs in its place. */
export const fencedSelector = (bottle: string) => ({
  matchLabels: { [BL.bottle]: bottle },
  matchExpressions: [{ key: ROLE_LABEL, operator: "In", values: ["agent", "probe"] }]
})

export interface ParentRef {
  readonly name: string
  readonly namespace: string
  readonly kind: string
  /** "" for the core group. */
  readonly group: string
}

/**
 * An ApplySet's id as kubectl computes it (KEP-3659): base64url, unpadded,
 * of sha256 of `name.namespace.kind.group`, between `applyset-` and `-v1`
 * so the label value starts and ends with a letter or digit.
 */
export const applysetId = (p: ParentRef): string =>
  `applyset-${createHash("sha256").update([p.name, p.namespace, p.kind, p.group].join(".")).digest("base64url")}-v1`

/**
 * The ConfigMap that parents one install's set of objects: `applyset.<prefix>.<set>`. The install's prefix
 * makes its ApplySet id its own (another install's objects in the namespace are not its members), and the
 * dots keep the name from any object of a bottle's (their names are DNS labels).
 */
export const parentRef = (set: string, namespace: string, prefix: string): ParentRef =>
  ({ name: `applyset.${prefix}.${set}`, namespace, kind: "ConfigMap", group: "" })

/** An object's `Kind.group` (a core kind bare), as the contains-group-kinds annotation names it. */
export const groupKindOf = (m: Pick<Manifest, "apiVersion" | "kind">): string => (m.apiVersion.includes("/") ? `${m.kind}.${m.apiVersion.split("/")[0]}` : m.kind)

/** Kinds sorted and unique, as the contains-group-kinds annotation lists them. */
export const groupKinds = (kinds: Iterable<string>): string => [...new Set(kinds)].sort().join(",")

/** The set's ApplySet parent, listing the kinds of its members (prune looks for members of those kinds only). */
export const applysetParent = (set: string, ctx: Pick<KubernetesContext, "namespace" | "tooling" | "prefix">, kinds: Iterable<string>): Manifest => {
  const ref = parentRef(set, ctx.namespace, ctx.prefix)
  return {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: {
      name: ref.name,
      namespace: ctx.namespace,
      labels: { [Applyset.id]: applysetId(ref), [BL.managedBy]: MANAGED_BY, [BL.set]: set },
      annotations: { [Applyset.tooling]: ctx.tooling, [Applyset.containsGroupKinds]: groupKinds(kinds) }
    }
  }
}

/** Addresses a proxy must never be sent to: the cluster's and the host's own, link-local (cloud metadata) and shared ranges. */
export const NON_PUBLIC_V4 = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10", "127.0.0.0/8", "0.0.0.0/8"]

/**
 * The prefix of the variables Kubernetes gives a pod for a Service of its namespace (`<NAME>_SERVICE_HOST`):
 * the Service's name, upper case, '-' as '_'. An env value `$(<NAME>_SERVICE_HOST)` is expanded from it.
 */
export const serviceVariable = (service: string) => service.toUpperCase().replace(/-/g, "_")

/** Names of a bottle's objects (a bottle name has at most 40 characters, so each stays a DNS label). */
export const kubeNames = (bottle: string) => ({
  account: bottle,
  agent: `${bottle}-agent`,
  egress: `${bottle}-egress`,
  state: `${bottle}-state`,
  agentSecrets: `${bottle}-agent-secrets`,
  egressSecrets: `${bottle}-egress-secrets`,
  agentFiles: `${bottle}-agent-files`,
  egressConfig: `${bottle}-egress-config`
})

export interface KubernetesBottle {
  /** In the order they are applied: nothing that runs before the NetworkPolicy that fences it. */
  readonly manifests: ReadonlyArray<Manifest>
  /** What the spec asks that has no meaning on a cluster yet: the bottle is refused, naming each. */
  readonly problems: ReadonlyArray<string>
}

const uidGid = (user: string): { readonly uid: number; readonly gid: number } | undefined => {
  const m = /^([0-9]+)(?::([0-9]+))?$/.exec(user)
  return m ? { uid: Number(m[1]), gid: Number(m[2] ?? m[1]) } : undefined
}

const DNS_PORTS = [{ protocol: "UDP", port: 53 }, { protocol: "TCP", port: 53 }]
/** The cluster's resolver, as kubeadm, k3s and the managed clusters label it. */
const KUBE_DNS = { namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "kube-system" } }, podSelector: { matchLabels: { "k8s-app": "kube-dns" } } }

const podHardening = (user: { uid: number; gid: number } | undefined) => ({
  runAsNonRoot: true,
  ...(user !== undefined ? { runAsUser: user.uid, runAsGroup: user.gid, fsGroup: user.gid } : {}),
  seccompProfile: { type: "RuntimeDefault" }
})
const containerHardening = (readOnlyRoot: boolean) => ({
  allowPrivilegeEscalation: false,
  privileged: false,
  readOnlyRootFilesystem: readOnlyRoot,
  capabilities: { drop: ["ALL"] }
})

export const realiseKubernetes = (b: DesiredBottle, ctx: KubernetesContext): KubernetesBottle => {
  const problems: Array<string> = []
  if (b.workspace !== undefined) problems.push("workspace: a host directory cannot be mounted into a cluster's pod (the workspace is a PersistentVolumeClaim)")
  if (b.build !== undefined) problems.push("build: bottle builds images on a Docker Engine only; name a pushed image with image:")
  if (b.git !== undefined) problems.push("git: the git gate runs on the docker backend only (for now)")
  if (b.supervise !== undefined) problems.push("supervise: the supervisor runs on the docker backend only (for now)")
  if (b.skills.length > 0) problems.push("skills: not carried to a cluster yet")
  const injected = b.secrets.filter((s) => s.inject !== undefined && s.gate !== true)
  if (injected.length > 0 && b.egressAllow.length > 0 && ctx.ca === undefined) problems.push("secrets: an injected secret needs the bottle's CA, which was not given")
  // A pod that must not run as root needs a uid the kubelet can check: the spec's, else 1000 (an image's named USER is not enough).
  const agentUser = b.user !== undefined ? uidGid(b.user) : { uid: 1000, gid: 1000 }
  if (b.user !== undefined && agentUser === undefined) problems.push(`user: '${b.user}' is not numeric; a pod's user is a uid (runAsUser)`)
  const proxyUser = uidGid(ctx.proxyUser)

  const n = kubeNames(b.name)
  const rules = parseAllowList(b.egressAllow)
  const hasProxy = rules.length > 0
  const partOf = applysetId(parentRef(b.set, ctx.namespace, ctx.prefix))
  const common = { [BL.managedBy]: MANAGED_BY, [BL.bottle]: b.name, [BL.set]: b.set, [BL.backend]: "kubernetes", [Applyset.partOf]: partOf }
  const selector = (role: string) => ({ [BL.bottle]: b.name, [ROLE_LABEL]: role })
  /** Label values are limited to 63 characters: hashes are annotations. The hash covers what the object says, nothing of a secret but its keyed digest. */
  const make = (apiVersion: string, kind: string, name: string, body: Record<string, unknown>, hashed: unknown = body, role?: string): Manifest => ({
    apiVersion,
    kind,
    metadata: { name, namespace: ctx.namespace, labels: { ...common, ...(role ? { [ROLE_LABEL]: role } : {}) }, annotations: { [BL.specHash]: hashOf(hashed).slice(0, 16) } },
    ...body
  })
  const out: Array<Manifest> = []

  out.push(make("v1", "ServiceAccount", n.account, { automountServiceAccountToken: false }))

  // ---- the fence first: nothing runs before it ----
  out.push(make("networking.k8s.io/v1", "NetworkPolicy", n.agent, {
    spec: {
      podSelector: fencedSelector(b.name),
      policyTypes: ["Ingress", "Egress"],
      ingress: [],
      // The proxy alone. Not the cluster's resolver: it forwards outside names, a way out for whatever the agent
      // puts in a name. The agent finds its proxy by the address Kubernetes gives it (its Service's variables).
      egress: hasProxy ? [{ to: [{ podSelector: { matchLabels: selector("egress") } }], ports: [{ protocol: "TCP", port: EGRESS_PORT }] }] : []
    }
  }))
  if (hasProxy) {
    const ports = [...new Set(rules.flatMap((r) => r.ports))].sort((x, y) => x - y)
    out.push(make("networking.k8s.io/v1", "NetworkPolicy", n.egress, {
      spec: {
        podSelector: { matchLabels: selector("egress") },
        policyTypes: ["Ingress", "Egress"],
        ingress: [{ from: [{ podSelector: fencedSelector(b.name) }], ports: [{ protocol: "TCP", port: EGRESS_PORT }] }],
        egress: [
          { to: [{ ipBlock: { cidr: "0.0.0.0/0", except: NON_PUBLIC_V4 } }], ports: ports.map((port) => ({ protocol: "TCP", port })) },
          { to: [KUBE_DNS], ports: DNS_PORTS }
        ]
      }
    }))
  }

  // ---- what the pods read ----
  const agentSecrets = b.secrets.filter((s) => s.gate !== true && s.inject === undefined)
  if (agentSecrets.length > 0) {
    out.push(make("v1", "Secret", n.agentSecrets, {
      type: "Opaque",
      stringData: Object.fromEntries(agentSecrets.map((s) => [s.name, s.value]))
    }, agentSecrets.map((s) => [s.name, s.digest])))
  }
  const proxySecretFiles: Record<string, string> = {
    ...Object.fromEntries(injected.map((s) => [`secret-${s.name}`, s.value])),
    ...(ctx.ca !== undefined && injected.length > 0 ? { "mitmproxy-ca.pem": `${ctx.ca.keyPem}${ctx.ca.certPem}` } : {})
  }
  if (hasProxy && Object.keys(proxySecretFiles).length > 0) {
    out.push(make("v1", "Secret", n.egressSecrets, { type: "Opaque", stringData: proxySecretFiles },
      [injected.map((s) => [s.name, s.digest]), ctx.ca !== undefined ? hashOf(ctx.ca.certPem) : null]))
  }
  const upstream = b.egressTrust.join("")
  /** What the proxy reads: a change rolls its pod (a ConfigMap's change alone would not). */
  let egressConfigHash = ""
  if (hasProxy) {
    const data: Record<string, string> = b.egressProxy === "pipelock"
      ? { "pipelock.yaml": renderPipelockConfig(b, rules) }
      : {
        [EGRESS_LAUNCH_FILE]: EGRESS_LAUNCH,
        [EGRESS_ADDON_FILE]: EGRESS_ADDON,
        [EGRESS_POLICY_FILE]: `${JSON.stringify(renderEgressPolicy(b, rules), null, 2)}\n`,
        ...(upstream !== "" ? { "upstream-ca.pem": upstream } : {})
      }
    out.push(make("v1", "ConfigMap", n.egressConfig, { data }))
    egressConfigHash = hashOf([data, injected.map((s) => s.digest), ctx.ca !== undefined ? hashOf(ctx.ca.certPem) : null]).slice(0, 16)
  }
  const agentFiles: Record<string, string> = {
    ...(b.prompt !== undefined ? { "prompt.md": b.prompt } : {}),
    ...(ctx.ca !== undefined && injected.length > 0 ? { "ca.pem": ctx.ca.certPem, "ca-bundle.pem": ctx.ca.bundlePem } : {})
  }
  if (Object.keys(agentFiles).length > 0) out.push(make("v1", "ConfigMap", n.agentFiles, { data: agentFiles }))

  const claim = make("v1", "PersistentVolumeClaim", n.state, {
    spec: { accessModes: ["ReadWriteOnce"], resources: { requests: { storage: ctx.stateSize } } }
  })
  out.push(b.preserve ? { ...claim, metadata: { ...claim.metadata, annotations: { ...claim.metadata.annotations, [PRESERVE_ANNOTATION]: "true" } } } : claim)

  // ---- the proxy ----
  const runtimeClassName = b.kubernetes?.runtimeClassName ?? ctx.runtimeClassName
  const runtime = runtimeClassName !== undefined ? { runtimeClassName } : {}
  const podBasics = { serviceAccountName: n.account, automountServiceAccountToken: false, enableServiceLinks: false, ...runtime }
  if (hasProxy) {
    const image = egressImageFor(b, ctx)
    const config = {
      name: "config",
      projected: {
        sources: [
          { configMap: { name: n.egressConfig } },
          ...(Object.keys(proxySecretFiles).length > 0
            ? [{ secret: { name: n.egressSecrets, items: Object.keys(proxySecretFiles).map((k) => ({ key: k, path: k.startsWith("secret-") ? `secrets/${k.slice("secret-".length)}` : `ca/${k}` })) } }]
            : [])
        ],
        // Readable by the proxy's group (fsGroup) alone.
        defaultMode: 0o440
      }
    }
    const args = b.egressProxy === "pipelock"
      ? ["run", "--listen", `0.0.0.0:${EGRESS_PORT}`, "--config", "/config/pipelock.yaml"]
      : [
        "--quiet", "--mode", "regular", "--listen-host", "0.0.0.0", "--listen-port", String(EGRESS_PORT),
        "--set", "connection_strategy=lazy", "--set", "confdir=/tmp/mitmproxy",
        ...(upstream !== "" ? ["--set", "ssl_verify_upstream_trusted_ca=/config/upstream-ca.pem"] : []),
        "-s", `/config/${EGRESS_ADDON_FILE}`
      ]
    const command = b.egressProxy === "pipelock" ? undefined : [...EGRESS_LAUNCH_COMMAND]
    const withCa = b.egressProxy === "mitmproxy" && ctx.ca !== undefined && injected.length > 0
    const container = {
      name: "egress",
      image,
      ...(command !== undefined ? { command } : {}),
      args,
      env: [
        { name: "HOME", value: "/tmp" },
        ...(b.egressProxy === "mitmproxy" ? [{ name: "BOTTLE_EGRESS_POLICY", value: `/config/${EGRESS_POLICY_FILE}` }] : []),
        ...(withCa ? [{ name: "BOTTLE_EGRESS_CA", value: "/config/ca/mitmproxy-ca.pem" }] : [])
      ],
      ports: [{ name: "proxy", containerPort: EGRESS_PORT, protocol: "TCP" }],
      readinessProbe: { tcpSocket: { port: EGRESS_PORT }, periodSeconds: 2 },
      resources: { limits: { memory: "256Mi", cpu: "1" }, requests: { memory: "64Mi", cpu: "50m" } },
      securityContext: containerHardening(true),
      volumeMounts: [{ name: "config", mountPath: "/config", readOnly: true }, { name: "tmp", mountPath: "/tmp" }]
    }
    const template = {
      metadata: { labels: { ...common, ...selector("egress") }, annotations: { [CONFIG_HASH]: egressConfigHash } },
      spec: {
        ...podBasics,
        securityContext: podHardening(proxyUser),
        containers: [container],
        volumes: [config, { name: "tmp", emptyDir: { medium: "Memory", sizeLimit: "64Mi" } }]
      }
    }
    out.push(make("apps/v1", "Deployment", n.egress, {
      spec: { replicas: 1, selector: { matchLabels: selector("egress") }, strategy: { type: "Recreate" }, template }
    }, template, "egress"))
    out.push(make("v1", "Service", n.egress, {
      spec: { type: "ClusterIP", selector: selector("egress"), ports: [{ name: "proxy", port: EGRESS_PORT, targetPort: EGRESS_PORT, protocol: "TCP" }] }
    }))
  }

  // ---- the agent ----
  const asVar = (kv: string) => ({ name: kv.slice(0, kv.indexOf("=")), value: kv.slice(kv.indexOf("=") + 1) })
  const workdir = b.workdir ?? "/workspace"
  const env = [
    ...Object.keys(b.env).sort().map((name) => ({ name, value: b.env[name]! })),
    ...[...b.secrets].filter((s) => s.gate !== true).sort((x, y) => byEnvName(x.name, y.name)).map((s) =>
      s.inject !== undefined
        ? { name: s.name, value: placeholderOf(s.name) }
        : { name: s.name, valueFrom: { secretKeyRef: { name: n.agentSecrets, key: s.name } } }),
    { name: "BOTTLE_NAME", value: b.name },
    ...(b.prompt !== undefined ? [{ name: "BOTTLE_PROMPT_FILE", value: `${AGENT_MOUNT}/prompt.md` }] : []),
    ...(ctx.ca !== undefined && injected.length > 0 ? caEnv.map(asVar) : []),
    // Last, so the spec cannot point the agent around its proxy.
    ...(hasProxy ? proxyEnv(`$(${serviceVariable(n.egress)}_SERVICE_HOST)`).map(asVar) : [])
  ]
  const mem = `${Math.max(1, Math.floor(b.resources.memoryBytes / 1024 ** 2))}Mi`
  const agent = {
    name: "agent",
    image: b.image,
    ...(b.command !== undefined ? { command: [...b.command] } : {}),
    workingDir: workdir,
    env,
    stdin: true,
    resources: { limits: { memory: mem, ...(b.resources.cpus !== undefined ? { cpu: String(b.resources.cpus) } : {}) } },
    securityContext: containerHardening(false),
    volumeMounts: [
      { name: "state", mountPath: workdir },
      ...(Object.keys(agentFiles).length > 0 ? [{ name: "files", mountPath: AGENT_MOUNT, readOnly: true }] : [])
    ]
  }
  // The gate: the agent's pod first proves, from inside, that its fence holds (a pod may start before the network
  // plugin enforces a new policy); the agent starts only then, and never where it does not.
  const gate = { name: "fence", ...clusterProbe(b.name, hasProxy ? egressImageFor(b, ctx) : undefined, ctx, { mode: "gate", deadline: 120 }, dnsNamesFor(rules)) }
  const agentTemplate = {
    metadata: { labels: { ...common, ...selector("agent") }, annotations: { [CONFIG_HASH]: hashOf([agentFiles, b.secrets.map((s) => s.digest)]).slice(0, 16) } },
    spec: {
      ...podBasics,
      // The Services' variables (the proxy's address among them): the agent reaches its proxy without DNS.
      enableServiceLinks: hasProxy,
      securityContext: podHardening(agentUser),
      initContainers: [gate],
      containers: [agent],
      volumes: [
        { name: "state", persistentVolumeClaim: { claimName: n.state } },
        ...(Object.keys(agentFiles).length > 0 ? [{ name: "files", configMap: { name: n.agentFiles, defaultMode: 0o444 } }] : [])
      ]
    }
  }
  out.push(ctx.sandboxApi === true
    ? make(SANDBOX_API_VERSION, "Sandbox", n.agent, { spec: { replicas: 1, podTemplate: agentTemplate } }, agentTemplate, "agent")
    : make("apps/v1", "StatefulSet", n.agent, {
      spec: { replicas: 1, serviceName: n.agent, selector: { matchLabels: selector("agent") }, template: agentTemplate }
    }, agentTemplate, "agent"))

  return { manifests: out, problems }
}

/**
 * A Kubernetes bottle's state dir on this host: its metadata alone (what it is, which set, which namespace),
 * written before anything is applied, so a later `reconcile --prune` knows where to look without its spec.
 */
export const kubeStateDir = (b: DesiredBottle, ctx: RealiseContext): StateDirSpec => {
  const specHash = hashOf({ ...b, skills: [], secrets: secretDigests(b), source: undefined, set: undefined })
  return {
    bottle: b.name,
    path: stateDirPath(ctx, b.name),
    specHash,
    preserve: b.preserve,
    metadata: { managedBy: MANAGED_BY, prefix: ctx.names.prefix, name: b.name, backend: b.backend, set: b.set, specHash, namespace: kubeNamespace(b) },
    files: {},
    dirs: [],
    managed: [],
    ca: false,
    upstreamTrust: []
  }
}

/**
 * The pod `bottle verify` runs to probe a bottle's fence from inside it: fenced as its agent is (the
 * agent's NetworkPolicy selects role probe too), hardened, never restarted, and a member of the set's
 * ApplySet, so a run cut off before it removed the pod leaves nothing prune does not reap.
 */
export const kubeProbePod = (
  b: { readonly name: string; readonly set: string; readonly proxyImage: string | undefined },
  ctx: Pick<KubernetesContext, "namespace" | "prefix" | "proxyUser" | "probeImage">,
  suffix: string
): Manifest => {
  const n = kubeNames(b.name)
  const user = uidGid(ctx.proxyUser)
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: `${b.name}-probe-${suffix}`,
      namespace: ctx.namespace,
      labels: { [BL.managedBy]: MANAGED_BY, [BL.bottle]: b.name, [BL.set]: b.set, [BL.backend]: "kubernetes", [Applyset.partOf]: applysetId(parentRef(b.set, ctx.namespace, ctx.prefix)), [ROLE_LABEL]: "probe" },
      annotations: {}
    },
    spec: {
      serviceAccountName: n.account,
      automountServiceAccountToken: false,
      // As the agent's pod: its proxy found by the Services' variables.
      enableServiceLinks: b.proxyImage !== undefined,
      restartPolicy: "Never",
      activeDeadlineSeconds: 120,
      securityContext: podHardening(user),
      containers: [{ name: "probe", ...clusterProbe(b.name, b.proxyImage, ctx, { mode: "verify" }, dnsNamesFor([])) }]
    }
  }
}

/**
 * The probe script in its cluster mode, as a container (image, command, env) inside a bottle's fence: the
 * agent's gate and verify's probe pod run the same. The proxy is found as the agent finds it (its Service's
 * variable), the node by the downward API.
 */
const clusterProbe = (
  bottle: string,
  /** The bottle's proxy image; undefined: it has no proxy. */
  proxyImage: string | undefined,
  ctx: Pick<KubernetesContext, "probeImage">,
  mode: { readonly mode: "gate" | "verify"; readonly deadline?: number },
  dnsNames: ReadonlyArray<string>
) => {
  const hasProxy = proxyImage !== undefined
  const input: ProbeInput = {
    ...mode,
    cluster: true,
    proxy: hasProxy ? { host: "", port: EGRESS_PORT } : null,
    proxyHostEnv: "BOTTLE_PROXY_HOST",
    refusedHost: REFUSED_HOST,
    hostTargets: [{ host: "169.254.169.254", port: 80 }],
    publicAddresses: PUBLIC_ADDRESSES,
    dnsNames,
    sidecars: [],
    timeout: 2
  }
  return {
    image: probeImageFor(proxyImage, ctx.probeImage ?? DEFAULT_MITMPROXY_IMAGE),
    command: ["python3", "-c", PROBE_SCRIPT, JSON.stringify(input)],
    env: [
      { name: "BOTTLE_NODE_IP", valueFrom: { fieldRef: { fieldPath: "status.hostIP" } } },
      ...(hasProxy ? [{ name: "BOTTLE_PROXY_HOST", value: `$(${serviceVariable(kubeNames(bottle).egress)}_SERVICE_HOST)` }] : [])
    ],
    resources: { limits: { memory: "64Mi", cpu: "500m" } },
    securityContext: containerHardening(true)
  }
}
