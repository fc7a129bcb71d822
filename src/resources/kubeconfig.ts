/**
 * Where a Kubernetes backend would talk to (issue #11): the cluster of one
 * kubeconfig context, as kubectl finds it. KUBECONFIG (a list of files, the
 * first to name a thing wins) or ~/.kube/config; `--context` or the file's
 * current-context. Pure: the caller reads the files.
 */
import { dirname, isAbsolute, join } from "node:path"
import { parse } from "yaml"

export interface KubeTarget {
  /** The context chosen, for messages. */
  readonly context: string
  /** https://host:port (http only for a test's fake API server). */
  readonly server: string
  /** The context's namespace, when it names one. */
  readonly namespace: string | undefined
  /** PEM of the cluster's CA; undefined: the system's CAs. */
  readonly ca: string | undefined
  readonly insecureSkipTlsVerify: boolean
  readonly token: string | undefined
  readonly clientCert: string | undefined
  readonly clientKey: string | undefined
}

export interface KubeconfigFile {
  readonly path: string
  readonly text: string
}

type Named = { readonly name?: unknown; readonly [k: string]: unknown }

/** The files kubectl reads, in order: KUBECONFIG's (':'-separated, empty entries skipped), else ~/.kube/config. */
export const kubeconfigPaths = (env: Readonly<Record<string, string | undefined>>, home: string): ReadonlyArray<string> => {
  const list = (env.KUBECONFIG ?? "").split(":").filter((p) => p !== "")
  return list.length > 0 ? list : [join(home, ".kube", "config")]
}

/**
 * Chooses the context and reads what reaching its cluster needs. Returns a
 * message naming the file and field for what cannot be used: a missing
 * context, cluster or user; credentials bottle does not run (exec plugins,
 * auth providers: running a command named in a file is not for bottle to do).
 */
export const resolveKubeconfig = (
  files: ReadonlyArray<KubeconfigFile>,
  contextName: string | undefined,
  readFile: (path: string) => string
): KubeTarget | string => {
  const parsed: Array<{ path: string; doc: Record<string, unknown> }> = []
  for (const f of files) {
    let doc: unknown
    try {
      doc = parse(f.text, { maxAliasCount: 100 })
    } catch (e) {
      return `${f.path}: not YAML (${(e as Error).message.split("\n")[0]})`
    }
    if (doc === null || doc === undefined) continue
    if (typeof doc !== "object" || Array.isArray(doc)) return `${f.path}: not a kubeconfig (a mapping is expected)`
    parsed.push({ path: f.path, doc: doc as Record<string, unknown> })
  }
  if (parsed.length === 0) return `no kubeconfig: ${files.map((f) => f.path).join(", ") || "none given"}`
  /** The first entry of that name in any file, with the file it came from (relative paths are relative to it). */
  const find = (list: string, name: string) => {
    for (const p of parsed) {
      const entries = p.doc[list]
      if (!Array.isArray(entries)) continue
      const hit = (entries as ReadonlyArray<Named>).find((e) => e !== null && typeof e === "object" && e.name === name)
      if (hit !== undefined) return { path: p.path, entry: hit }
    }
    return undefined
  }
  const current = contextName ?? parsed.map((p) => p.doc["current-context"]).find((c): c is string => typeof c === "string" && c !== "")
  if (current === undefined) return `${parsed[0]!.path}: no current-context; pass --context`
  const ctx = find("contexts", current)
  const c = ctx?.entry.context as Record<string, unknown> | undefined
  if (ctx === undefined || c === undefined || typeof c !== "object") return `kubeconfig: no context '${current}' (in ${parsed.map((p) => p.path).join(", ")})`
  const clusterName = c.cluster
  const userName = c.user
  if (typeof clusterName !== "string") return `${ctx.path}: contexts[${current}].context.cluster is missing`
  const cl = find("clusters", clusterName)
  const cluster = cl?.entry.cluster as Record<string, unknown> | undefined
  if (cl === undefined || cluster === undefined) return `kubeconfig: context '${current}' names cluster '${clusterName}', which no file defines`
  const server = cluster.server
  if (typeof server !== "string" || !/^https?:\/\/[^/\s]+\/?$/.test(server)) return `${cl.path}: clusters[${clusterName}].cluster.server must be an http(s) URL without a path (got ${JSON.stringify(server)})`

  const read = (from: string, field: string, data: unknown, file: unknown): string | undefined | { error: string } => {
    if (typeof data === "string" && data !== "") {
      const text = Buffer.from(data, "base64").toString("utf8")
      return text.includes("-----BEGIN") ? text : { error: `${from}: ${field}-data is not base64 of PEM` }
    }
    if (typeof file === "string" && file !== "") {
      const at = isAbsolute(file) ? file : join(dirname(from), file)
      try {
        return readFile(at)
      } catch (e) {
        return { error: `${from}: ${field} ${at}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` }
      }
    }
    return undefined
  }
  const ca = read(cl.path, "certificate-authority", cluster["certificate-authority-data"], cluster["certificate-authority"])
  if (typeof ca === "object") return ca.error

  let token: string | undefined
  let clientCert: string | undefined
  let clientKey: string | undefined
  if (typeof userName === "string") {
    const u = find("users", userName)
    const user = (u?.entry.user ?? {}) as Record<string, unknown>
    if (u === undefined) return `kubeconfig: context '${current}' names user '${userName}', which no file defines`
    if (user.exec !== undefined) return `${u.path}: users[${userName}] runs a credential plugin (exec); bottle runs no command a kubeconfig names: use a token or a client certificate`
    if (user["auth-provider"] !== undefined) return `${u.path}: users[${userName}] uses an auth-provider, which bottle does not support`
    if (typeof user.token === "string" && user.token !== "") token = user.token
    else if (typeof user.tokenFile === "string") {
      const t = read(u.path, "tokenFile", undefined, user.tokenFile)
      if (typeof t === "object") return t.error
      token = t?.trim()
    }
    const cert = read(u.path, "client-certificate", user["client-certificate-data"], user["client-certificate"])
    if (typeof cert === "object") return cert.error
    const key = read(u.path, "client-key", user["client-key-data"], user["client-key"])
    if (typeof key === "object") return key.error
    if ((cert === undefined) !== (key === undefined)) return `${u.path}: users[${userName}] has a client certificate without its key, or a key without its certificate`
    clientCert = cert
    clientKey = key
  }
  return {
    context: current,
    server: server.replace(/\/$/, ""),
    namespace: typeof c.namespace === "string" && c.namespace !== "" ? c.namespace : undefined,
    ca,
    insecureSkipTlsVerify: cluster["insecure-skip-tls-verify"] === true,
    token,
    clientCert,
    clientKey
  }
}
