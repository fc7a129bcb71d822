/**
 * Engine API requests made by one `bottle diff`, with 5 and with 50 bottles
 * present on the engine, counted by a pass-through proxy. The lists must be
 * the same number whatever the count; what grows is one inspection per
 * container of bottle's (what fences it is compared as observed, rule 7)
 * and one per image they run, made concurrently.
 *
 * The bottles are seeded with the docker CLI rather than applied: 50 docker
 * bottles need 100 networks, and Docker's default address pools hold about
 * 30, so each seeded network gets a /28 of its own out of 10.213.0.0/16.
 * The diff sees every bottle's containers and networks (and plans to
 * replace them, since their spec-hash labels are not bottle's): what is
 * counted is the observation, which is what must not grow with the count.
 */
import { spawn, execFileSync } from "node:child_process"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { startFaultProxy } from "../tests/support/faultProxy.js"
import { AGENT_IMAGE, BIN, env, ensureTestImages, scrub } from "./support.js"

const spec = (n: number) =>
  Array.from({ length: n }, (_, i) => `apiVersion: bottle/v1\nkind: Bottle\nmetadata: { name: b${i} }\nspec:\n  image: ${AGENT_IMAGE}\n  resources: { memory: 32m, pids: 16 }\n`).join("---\n")

/** Per bottle: its two networks and its two (created, not started) containers, labelled as a compose project. */
const seed = (prefix: string, n: number) => {
  const lines: Array<string> = []
  for (let i = 0; i < n; i++) {
    const project = `${prefix}-b${i}`
    const label = `--label com.docker.compose.project=${project}`
    lines.push(`docker network create --internal --subnet 10.213.${i}.0/28 ${label} --label com.docker.compose.network=internal ${project}_internal >/dev/null`)
    lines.push(`docker network create --subnet 10.213.${i}.16/28 ${label} --label com.docker.compose.network=egress ${project}_egress >/dev/null`)
    for (const s of ["agent", "egress"]) {
      lines.push(`docker create --name ${project}-${s}-1 ${label} --label com.docker.compose.service=${s} --network ${project}_${s === "agent" ? "internal" : "egress"} ${AGENT_IMAGE} >/dev/null`)
    }
  }
  execFileSync("bash", ["-ec", lines.join("\n")], { stdio: ["ignore", "ignore", "inherit"] })
}

const diffRequests = async (e: NodeJS.ProcessEnv, file: string) => {
  const proxy = await startFaultProxy()
  try {
    const code = await new Promise<number | null>((resolve) => {
      const child = spawn(process.execPath, [BIN, "diff", "-f", file], { env: { ...e, DOCKER_HOST: proxy.endpoint }, stdio: "ignore" })
      child.on("close", (c) => resolve(c))
    })
    if (code !== 1) throw new Error(`bottle diff exited ${code}, expected 1 (changes to make)`)
    return [...proxy.seen]
  } finally {
    await proxy.close()
  }
}

export const benchRequests = async () => {
  ensureTestImages()
  const counts: Record<number, Array<string>> = {}
  for (const n of [5, 50]) {
    const prefix = `breq${n}${process.pid.toString(36)}`
    const e = env(prefix)
    const file = join(mkdtempSync(join(tmpdir(), "bottle-bench-")), "spec.yaml")
    writeFileSync(file, spec(n))
    try {
      seed(prefix, n)
      counts[n] = await diffRequests(e, file)
    } finally {
      scrub(prefix)
    }
  }
  const [five, fifty] = [counts[5]!, counts[50]!]
  const isInspect = (r: string) => /^GET \/v1\.41\/(containers|images)\/[^/]+\/json/.test(r)
  const lists = (rs: ReadonlyArray<string>) => rs.filter((r) => !isInspect(r))
  const inspects = (rs: ReadonlyArray<string>) => rs.filter(isInspect)
  console.log("Engine API requests of one `bottle diff` (bottles present on the engine and in the spec):")
  console.log(`  with  5 bottles: ${lists(five).length} lists and the version, ${inspects(five).length} inspections`)
  console.log(`  with 50 bottles: ${lists(fifty).length} lists and the version, ${inspects(fifty).length} inspections   ${lists(five).length === lists(fifty).length ? "lists the SAME (target met)" : "lists DIFFERENT (target NOT met)"}`)
  console.log(`  lists: ${lists(fifty).map((r) => r.split("?")[0]).join(", ")}`)
}
