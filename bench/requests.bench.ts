/**
 * Engine API requests made by one `bottle diff`, with 5 and with 50 bottles
 * applied, counted by a pass-through proxy: they must be the same number.
 */
import { spawn } from "node:child_process"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { startFaultProxy } from "../tests/support/faultProxy.js"
import { AGENT_IMAGE, BIN, bottle, env, ensureTestImages, scrub } from "./support.js"

const spec = (n: number) =>
  Array.from({ length: n }, (_, i) => `apiVersion: bottle/v1\nkind: Bottle\nmetadata: { name: b${i} }\nspec:\n  image: ${AGENT_IMAGE}\n  resources: { memory: 32m, pids: 16 }\n`).join("---\n")

const diffRequests = async (e: NodeJS.ProcessEnv, file: string) => {
  const proxy = await startFaultProxy()
  try {
    await new Promise<void>((resolve) => {
      const child = spawn(process.execPath, [BIN, "diff", "-f", file], { env: { ...e, DOCKER_HOST: proxy.endpoint }, stdio: "ignore" })
      child.on("close", () => resolve())
    })
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
      bottle(e, "apply", "-f", file, "--concurrency", "16")
      counts[n] = await diffRequests(e, file)
    } finally {
      scrub(prefix)
    }
  }
  console.log("Engine API requests of one `bottle diff`:")
  console.log(`  with  5 bottles: ${counts[5]!.length}`)
  console.log(`  with 50 bottles: ${counts[50]!.length}   ${counts[5]!.length === counts[50]!.length ? "SAME (target met)" : "DIFFERENT (target NOT met)"}`)
  console.log(`  requests: ${counts[50]!.map((r) => r.split("?")[0]).join(", ")}`)
}
