/**
 * Image references as the Engine reads them (the grammar of
 * distribution/reference): checked in the spec, and normalised so that
 * `x`, `x:latest`, `docker.io/library/x:latest` and Podman's
 * `localhost/x:latest` are one image when an observed tag is compared. Pure.
 */

/** distribution/reference's limit on the name part (domain and path, without tag or digest). */
export const MAX_NAME_LENGTH = 255

const COMPONENT = "[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
const DOMAIN_COMPONENT = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
const DOMAIN = `(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[0-9a-fA-F:]+\\])(?::[0-9]+)?`
const TAG = "[\\w][\\w.-]{0,127}"
const DIGEST = "[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
const REFERENCE = new RegExp(`^((?:${DOMAIN}/)?${COMPONENT}(?:/${COMPONENT})*)(?::(${TAG}))?(?:@(${DIGEST}))?$`)

export interface ImageRef {
  /** The name as written (domain included when given). */
  readonly name: string
  readonly tag: string | undefined
  readonly digest: string | undefined
}

/** Parses a reference, or says what is wrong with it. */
export const parseImageRef = (ref: string): ImageRef | string => {
  if (ref.length === 0) return "must not be empty"
  const m = REFERENCE.exec(ref)
  if (m === null) return "is not an image reference (expected name[:tag][@digest], such as claude-bottle:latest)"
  const name = m[1]!
  if (name.length > MAX_NAME_LENGTH) return `names a repository of ${name.length} characters; the Engine allows at most ${MAX_NAME_LENGTH}`
  return { name, tag: m[2], digest: m[3] }
}

/** Whether the first component of a name is a registry host (as the Engine decides it). */
const hasDomain = (name: string) => {
  const slash = name.indexOf("/")
  if (slash < 0) return false
  const first = name.slice(0, slash)
  return first.includes(".") || first.includes(":") || first === "localhost" || first !== first.toLowerCase()
}

/**
 * The fully qualified form: default registry and `library/` for one-component
 * names, `:latest` when neither tag nor digest is given. Podman's `localhost/`
 * (its prefix for images made locally) is read as no registry at all.
 */
export const normaliseImageRef = (ref: string): string => {
  const parsed = parseImageRef(ref)
  if (typeof parsed === "string") return ref
  let name = parsed.name
  if (name.startsWith("localhost/")) name = name.slice("localhost/".length)
  if (name.startsWith("index.docker.io/")) name = name.slice("index.".length)
  if (!hasDomain(name)) name = `docker.io/${name}`
  if (name.startsWith("docker.io/") && !name.slice("docker.io/".length).includes("/")) name = `docker.io/library/${name.slice("docker.io/".length)}`
  const tag = parsed.tag ?? (parsed.digest === undefined ? "latest" : undefined)
  return `${name}${tag !== undefined ? `:${tag}` : ""}${parsed.digest !== undefined ? `@${parsed.digest}` : ""}`
}
