/**
 * The kubernetes backend against a REAL cluster: runs only with
 * BOTTLE_K8S_LIVE=1 and a kubeconfig (KUBECONFIG or ~/.kube/config, its
 * current context or BOTTLE_K8S_CONTEXT). The namespace (BOTTLE_K8S_NAMESPACE,
 * default bottle-live) must exist: bottle never makes one. The images
 * (BOTTLE_K8S_AGENT_IMAGE, BOTTLE_K8S_EGRESS_IMAGE) must be pullable by the
 * cluster. Elsewhere this suite is skipped, loudly.
 */
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { bottleAsync, uniquePrefix } from "../support/docker.js"

const live = process.env["BOTTLE_K8S_LIVE"] === "1"
if (!live) console.warn("\n*** SKIPPED: the live Kubernetes suite (tests/integration/kubernetesLive.test.ts) needs BOTTLE_K8S_LIVE=1 and a kubeconfig for a real cluster ***\n")

describe.skipIf(!live)("kubernetes bottles on a real cluster", () => {
  const namespace = process.env["BOTTLE_K8S_NAMESPACE"] ?? "bottle-live"
  const home = mkdtempSync(join(tmpdir(), "bottle-home-"))
  const dir = mkdtempSync(join(tmpdir(), "bottle-specs-"))
  const env = {
    BOTTLE_PREFIX: uniquePrefix("live"),
    BOTTLE_HOME: home,
    ...(process.env["BOTTLE_K8S_EGRESS_IMAGE"] !== undefined ? { BOTTLE_EGRESS_IMAGE: process.env["BOTTLE_K8S_EGRESS_IMAGE"] } : {})
  }
  const context = process.env["BOTTLE_K8S_CONTEXT"] !== undefined ? ["--context", process.env["BOTTLE_K8S_CONTEXT"]] : []
  const run = (...args: ReadonlyArray<string>) => bottleAsync(env, ...args)
  const spec = join(dir, "live.yaml")
  writeFileSync(spec, [
    "apiVersion: bottle/v1", "kind: Bottle", "metadata: { name: live }", "spec:", "  backend: kubernetes", `  namespace: ${namespace}`,
    `  image: ${process.env["BOTTLE_K8S_AGENT_IMAGE"] ?? "debian:bookworm-slim"}`, "  command: [sleep, infinity]", "  user: \"1000\"",
    "  egress: { allow: [api.anthropic.com] }", "  resources: { memory: 256m }", ""
  ].join("\n"))

  afterAll(async () => { await run("reconcile", "--prune", "--yes", ...context) })

  it("applies, comes up, answers exec, is verified, is in sync, and is reaped", async () => {
    const a = await run("apply", "-f", spec, ...context)
    expect(a.status, a.stdout + a.stderr).toBe(0)
    let state = ""
    for (let i = 0; i < 90 && state !== "running"; i++) {
      const g = await run("get", "-o", "json", ...context)
      state = (JSON.parse(g.stdout).bottles as Array<{ name: string; state: string }>).find((b) => b.name === "live")?.state ?? ""
      if (state !== "running") await new Promise((r) => setTimeout(r, 2000))
    }
    expect(state).toBe("running")
    const e = await run("exec", ...context, "live", "--", "sh", "-c", "echo $HTTPS_PROXY")
    expect(e.status, e.stderr).toBe(0)
    // The proxy by its Service's address: the agent has no DNS.
    expect(e.stdout.trim()).toMatch(/^http:\/\/[0-9a-f.:]+:8888$/)
    const v = await run("verify", ...context, "live")
    expect(v.status, v.stdout + v.stderr).toBe(0)
    expect((await run("diff", "-f", spec, ...context)).status).toBe(0)
    const r = await run("reconcile", "--prune", "--yes", ...context)
    expect(r.status, r.stdout + r.stderr).toBe(0)
    const g = await run("get", "-o", "json", ...context)
    expect(JSON.parse(g.stdout).bottles).toEqual([])
  }, 600_000)
})
