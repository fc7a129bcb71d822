/** The pure planner: every rule of the design and every action kind, table-driven. */
import { describe, expect, it } from "vitest"
import { isDestructive, type Action } from "../src/reconcilers/actions.js"
import { plan } from "../src/reconcilers/plan.js"
import { Compose } from "../src/resources/labels.js"
import { makeNames } from "../src/resources/names.js"
import { bottle, container, emptyWorld, managed, network, observed, options, ours, worldAfterApply } from "./support/fixtures.js"

const brief = (actions: ReadonlyArray<Action>) => actions.map((a) => `${a._tag} ${a.resource}`)
const mutating = (actions: ReadonlyArray<Action>) => actions.filter((a) => a._tag !== "Unchanged" && a._tag !== "Blocked")
const find = (actions: ReadonlyArray<Action>, tag: Action["_tag"], resource: string) => {
  const a = actions.find((x) => x._tag === tag && x.resource === resource)
  if (!a) throw new Error(`no ${tag} ${resource} in:\n${brief(actions).join("\n")}`)
  return a
}
/** Every id `a` waits for, directly or not. */
const ancestors = (actions: ReadonlyArray<Action>, a: Action): Set<string> => {
  const byId = new Map(actions.map((x) => [x.id, x]))
  const seen = new Set<string>()
  const walk = (x: Action) => x.after.forEach((id) => { if (!seen.has(id)) { seen.add(id); walk(byId.get(id)!) } })
  walk(a)
  return seen
}
const S = "/home/u/.claude-bottle/state"

describe("rule 1: create missing, start stopped, replace changed, keep matching", () => {
  it("creates every resource of a new docker bottle", () => {
    const p = plan([bottle("a")], observed(emptyWorld()), options())
    expect(brief(p.actions)).toEqual([
      `EnsureStateDir ${S}/a`,
      "CreateNetwork claude-bottle-a_internal",
      "CreateNetwork claude-bottle-a_egress",
      "CreateContainer claude-bottle-a-egress-1",
      "StartContainer claude-bottle-a-egress-1",
      "CreateContainer claude-bottle-a-agent-1",
      "StartContainer claude-bottle-a-agent-1",
      "VerifyBottle claude-bottle-a-agent-1"
    ])
  })

  it("changes nothing when the world matches the spec", () => {
    const b = [bottle("a"), bottle("b")]
    const p = plan(b, observed(worldAfterApply(b)), options())
    expect(mutating(p.actions)).toEqual([])
    expect(p.actions.every((a) => a._tag === "Unchanged")).toBe(true)
    expect(p.actions).toHaveLength(2 * 5)
  })

  it.each(["exited", "created"])("starts a %s container and nothing else", (state) => {
    const w = worldAfterApply([bottle("a")])
    w.containers = w.containers.map((c) => (c.name.endsWith("agent-1") ? { ...c, state } : c))
    const p = plan([bottle("a")], observed(w), options())
    expect(brief(mutating(p.actions))).toEqual(["StartContainer claude-bottle-a-agent-1", "VerifyBottle claude-bottle-a-agent-1"])
    expect(find(p.actions, "StartContainer", "claude-bottle-a-agent-1").cause).toBe(`stopped (${state})`)
  })

  it("a run killed between create and connect: the half-made proxy is replaced, and that needs no confirmation (it never ran)", () => {
    const w = worldAfterApply([bottle("a")])
    // As a SIGKILL leaves it: created on the internal network, never attached to the egress one, never started.
    w.containers = w.containers.map((c) => (c.name.endsWith("egress-1")
      ? { ...c, state: "created", facts: { ...c.facts!, networks: c.facts!["networks"]!.filter((n) => !n.endsWith("_egress")) } }
      : c))
    const p = plan([bottle("a")], observed(w), options())
    const remove = find(p.actions, "RemoveContainer", "claude-bottle-a-egress-1")
    expect(remove.cause).toContain("not attached to network claude-bottle-a_egress")
    expect(isDestructive(remove)).toBe(false)
    // One that ran and drifted the same way is the user's to confirm.
    const ran = worldAfterApply([bottle("a")])
    ran.containers = ran.containers.map((c) => (c.name.endsWith("egress-1") ? { ...c, state: "exited", facts: { ...c.facts!, networks: c.facts!["networks"]!.filter((n) => !n.endsWith("_egress")) } } : c))
    expect(isDestructive(find(plan([bottle("a")], observed(ran), options()).actions, "RemoveContainer", "claude-bottle-a-egress-1"))).toBe(true)
  })

  it("replaces only the agent when env changes, naming the field", () => {
    const w = worldAfterApply([bottle("a"), bottle("b")])
    const p = plan([bottle("a", { env: { LOG_LEVEL: "debug" } }), bottle("b")], observed(w), options())
    expect(brief(mutating(p.actions))).toEqual([
      `EnsureStateDir ${S}/a`,
      "RemoveContainer claude-bottle-a-agent-1",
      "CreateContainer claude-bottle-a-agent-1",
      "StartContainer claude-bottle-a-agent-1",
      "VerifyBottle claude-bottle-a-agent-1"
    ])
    expect(find(p.actions, "CreateContainer", "claude-bottle-a-agent-1").cause).toBe("spec changed: env")
    const create = find(p.actions, "CreateContainer", "claude-bottle-a-agent-1")
    expect(create.after).toContain("RemoveContainer:claude-bottle-a-agent-1")
  })

  it("replaces the proxy, not the agent, when the allow list changes", () => {
    const w = worldAfterApply([bottle("a")])
    const p = plan([bottle("a", { egressAllow: ["api.anthropic.com", "*.github.com"] })], observed(w), options())
    expect(brief(mutating(p.actions))).toEqual([
      `EnsureStateDir ${S}/a`,
      "RemoveContainer claude-bottle-a-egress-1",
      "CreateContainer claude-bottle-a-egress-1",
      "StartContainer claude-bottle-a-egress-1",
      "VerifyBottle claude-bottle-a-agent-1"
    ])
    // The new config file is written before the new proxy is made.
    expect(find(p.actions, "CreateContainer", "claude-bottle-a-egress-1").after).toContain("EnsureStateDir:a")
  })

  it("replaces a container whose image id changed under the same tag", () => {
    const w = worldAfterApply([bottle("a")])
    w.images["docker.io/library/claude-bottle:latest"] = "sha256:0123456789abcdef0123"
    const p = plan([bottle("a")], observed(w), options())
    expect(brief(mutating(p.actions))).toEqual([
      "RemoveContainer claude-bottle-a-agent-1",
      "CreateContainer claude-bottle-a-agent-1",
      "StartContainer claude-bottle-a-agent-1",
      "VerifyBottle claude-bottle-a-agent-1"
    ])
    expect(find(p.actions, "CreateContainer", "claude-bottle-a-agent-1").cause).toBe("image claude-bottle:latest changed (now 0123456789ab)")
  })

  it("recreates the containers of a bottle whose network vanished", () => {
    const w = worldAfterApply([bottle("a")])
    w.networks = w.networks.filter((n) => !n.name.endsWith("_internal"))
    const p = plan([bottle("a")], observed(w), options())
    const m = brief(mutating(p.actions))
    expect(m).toContain("CreateNetwork claude-bottle-a_internal")
    expect(m).toContain("RemoveContainer claude-bottle-a-agent-1")
    expect(m).toContain("CreateContainer claude-bottle-a-egress-1")
    expect(ancestors(p.actions, find(p.actions, "CreateContainer", "claude-bottle-a-agent-1"))).toContain("CreateNetwork:claude-bottle-a_internal")
  })

  it("replaces a leftover that holds a desired container's name", () => {
    const w = worldAfterApply([bottle("a")])
    w.containers = w.containers.filter((c) => !c.name.endsWith("agent-1"))
    w.containers.push(container("claude-bottle-a-agent-1"))
    const p = plan([bottle("a")], observed(w), options())
    expect(find(p.actions, "CreateContainer", "claude-bottle-a-agent-1").cause).toBe("not made by bottle")
    expect(brief(p.actions)).toContain("RemoveContainer claude-bottle-a-agent-1")
  })

  it("writes the state dir when its metadata is missing, and keeps an up-to-date one", () => {
    const w = worldAfterApply([bottle("a")])
    w.dirs[0] = { ...w.dirs[0]!, metadata: undefined }
    expect(find(plan([bottle("a")], observed(w), options()).actions, "EnsureStateDir", `${S}/a`).cause).toBe("metadata.json missing")
  })
})

describe("rule 2: order", () => {
  it("an agent started beside a proxy left running waits for that proxy to answer (a killed run may have just started it)", () => {
    const w = worldAfterApply([bottle("a")])
    w.containers = w.containers.filter((c) => !c.name.endsWith("agent-1"))
    const p = plan([bottle("a")], observed(w), options())
    const start = find(p.actions, "StartContainer", "claude-bottle-a-agent-1")
    expect(start._tag === "StartContainer" ? start.awaitReady : undefined).toMatchObject({ target: "claude-bottle-a-egress-1", ready: { port: 8888, repeat: false } })
    // A proxy started in the same plan is waited for by its own start instead.
    const fresh = find(plan([bottle("a")], observed(emptyWorld()), options()).actions, "StartContainer", "claude-bottle-a-agent-1")
    expect(fresh._tag === "StartContainer" ? fresh.awaitReady : "?").toBeUndefined()
  })

  it("up: networks and state dir before the proxy, the proxy started before the agent", () => {
    const p = plan([bottle("a")], observed(emptyWorld()), options())
    const agentStart = find(p.actions, "StartContainer", "claude-bottle-a-agent-1")
    const up = ancestors(p.actions, agentStart)
    expect(up).toEqual(new Set([
      "CreateNetwork:claude-bottle-a_internal", "CreateNetwork:claude-bottle-a_egress", "EnsureStateDir:a",
      "CreateContainer:claude-bottle-a-egress-1", "StartContainer:claude-bottle-a-egress-1", "CreateContainer:claude-bottle-a-agent-1"
    ]))
  })

  it("down: agent, then sidecars, then networks, then the state dir", () => {
    const w = worldAfterApply([bottle("a")])
    const p = plan([], observed(w), options("all"))
    const sd = find(p.actions, "RemoveStateDir", `${S}/a`)
    const net = find(p.actions, "RemoveNetwork", "claude-bottle-a_internal")
    const egress = find(p.actions, "RemoveContainer", "claude-bottle-a-egress-1")
    expect(egress.after).toEqual(["RemoveContainer:claude-bottle-a-agent-1"])
    expect(ancestors(p.actions, net)).toEqual(new Set(["RemoveContainer:claude-bottle-a-agent-1", "RemoveContainer:claude-bottle-a-egress-1"]))
    expect(ancestors(p.actions, sd).size).toBe(4)
  })

  it("machines stop before delete; the bundle goes after the machine", () => {
    const b = bottle("vm", { backend: "smolmachines" })
    const p = plan([], observed(worldAfterApply([b])), options("all"))
    expect(find(p.actions, "DeleteMachine", "claude-bottle-vm").after).toEqual(["StopMachine:claude-bottle-vm"])
    expect(find(p.actions, "RemoveContainer", "claude-bottle-sidecars-vm").after).toContain("DeleteMachine:claude-bottle-vm")
    expect(ancestors(p.actions, find(p.actions, "RemoveStateDir", `${S}/vm`))).toContain("RemoveNetwork:" + find(p.actions, "RemoveNetwork", "claude-bottle-bundle-vm").id.split(":").slice(1).join(":"))
  })

  it("is deterministic whatever order the observers listed things in", () => {
    const bs = [bottle("a"), bottle("b"), bottle("c")]
    const w = worldAfterApply(bs)
    const reversed = { ...w, containers: [...w.containers].reverse(), networks: [...w.networks].reverse(), dirs: [...w.dirs].reverse() }
    expect(brief(plan([], observed(w), options("all")).actions)).toEqual(brief(plan([], observed(reversed), options("all")).actions))
  })
})

describe("rule 3: prune touches only prefixed names", () => {
  it("leaves everything without the prefix alone, even when labelled as bottle's", () => {
    const w = worldAfterApply([bottle("a")])
    w.containers.push(container("my-db", managed("a")), container("web-1", { [Compose.project]: "web" }))
    w.networks.push(network("my-net", managed("a")))
    const p = plan([], observed(w), options("all"))
    expect(brief(p.actions).filter((x) => /my-db|web-1|my-net/.test(x))).toEqual([])
  })

  it("leaves alone the bottles of an install with a longer prefix (claude-bottle-dev beside claude-bottle)", () => {
    const w = emptyWorld()
    const theirs = { ...managed("foo"), [Compose.project]: "claude-bottle-dev-foo" }
    w.containers.push(container("claude-bottle-dev-foo-agent-1", theirs), container("claude-bottle-dev-sidecars-vm", managed("vm")))
    w.networks.push(network("claude-bottle-dev-foo_internal", theirs))
    w.machines.push({ name: "claude-bottle-dev-vm", state: "running", labels: managed("vm"), image: "x" })
    // …while a label-less leftover with our prefix is still ours.
    w.containers.push(container("claude-bottle-dev-old"))
    const p = plan([], observed(w), options("all"))
    expect(brief(mutating(p.actions))).toEqual(["RemoveContainer claude-bottle-dev-old"])
  })

  it("a short custom prefix never claims a user's own containers, networks or compose projects by name", () => {
    // BOTTLE_PREFIX=claude: `claude-desktop-helper` and compose project `claude-app` are the user's, label-less or not.
    const short = makeNames("claude")
    const opts = { ...options("all"), names: short, realise: { ...options("all").realise, names: short } }
    const w = emptyWorld()
    w.containers.push(
      container("claude-desktop-helper"),
      container("claude-app-web-1", { [Compose.project]: "claude-app", [Compose.service]: "web" }),
      // …while a name exactly as bottle gives it, with no labels at all, is a leftover of ours.
      container("claude-old-agent-1")
    )
    w.networks.push(network("claude-app_default", { [Compose.project]: "claude-app" }), network("claude-net"))
    const p = plan([], observed(w), opts)
    expect(brief(mutating(p.actions))).toEqual(["RemoveContainer claude-old-agent-1"])
  })

  it("under the older tool's prefix, its label-less leftovers are ours whatever their names", () => {
    const w = emptyWorld()
    w.containers.push(container("claude-bottle-researcher-m3hxd"))
    w.networks.push(network("claude-bottle-researcher-m3hxd_default"))
    expect(brief(mutating(plan([], observed(w), options("all")).actions)).sort()).toEqual([
      "RemoveContainer claude-bottle-researcher-m3hxd", "RemoveNetwork claude-bottle-researcher-m3hxd_default"
    ])
  })

  it("apply --prune never removes another set's state dir, even of an idle bottle", () => {
    const w = worldAfterApply([bottle("a"), bottle("idle", { set: "b" })])
    w.containers = w.containers.filter((c) => !c.name.includes("idle"))
    w.networks = w.networks.filter((n) => !n.name.includes("idle"))
    const p = plan([bottle("a")], observed(w), options("set"))
    expect(brief(p.actions).filter((x) => x.includes("idle"))).toEqual([])
    // …while reconcile --prune (every set) does reap it.
    expect(brief(plan([], observed(w), options("all")).actions)).toContain(`RemoveStateDir ${S}/idle`)
  })

  it("plain apply removes no other bottle", () => {
    const w = worldAfterApply([bottle("a"), bottle("old")])
    expect(mutating(plan([bottle("a")], observed(w), options("none")).actions)).toEqual([])
  })

  it("apply --prune removes bottles of its own set only", () => {
    const w = worldAfterApply([bottle("a"), bottle("gone"), bottle("other", { set: "b" })])
    const p = plan([bottle("a")], observed(w), options("set"))
    const removed = brief(mutating(p.actions))
    expect(removed).toContain("RemoveContainer claude-bottle-gone-agent-1")
    expect(removed).toContain(`RemoveStateDir ${S}/gone`)
    expect(removed.filter((x) => x.includes("other"))).toEqual([])
  })

  it("reconcile --prune reaps every set and every kind of leftover", () => {
    const w = worldAfterApply([bottle("x", { set: "s1" }), bottle("y", { set: "s2" })])
    w.containers.push(
      container("claude-bottle-stray"),
      container("legacy_agent_1", { [Compose.project]: "claude-bottle-legacy", [Compose.service]: "agent" }),
      container("claude-bottle-sidecars-old")
    )
    w.networks.push(network("claude-bottle-straynet"), network("claude-bottle-bundle-old"), network("claude-bottle-legacy_default", { [Compose.project]: "claude-bottle-legacy" }))
    w.volumes.push({ name: "claude-bottle-legacy_data", labels: { [Compose.project]: "claude-bottle-legacy" } })
    const p = plan([], observed(w), options("all"))
    const m = brief(mutating(p.actions))
    for (const r of ["claude-bottle-stray", "legacy_agent_1", "claude-bottle-sidecars-old", "claude-bottle-straynet", "claude-bottle-bundle-old", "claude-bottle-legacy_default", "claude-bottle-x-agent-1", "claude-bottle-y-agent-1"]) {
      expect(m.some((x) => x.endsWith(` ${r}`)), r).toBe(true)
    }
    expect(m).toContain("RemoveVolume claude-bottle-legacy_data")
    expect(find(p.actions, "RemoveVolume", "claude-bottle-legacy_data").after).toContain("RemoveContainer:legacy_agent_1")
  })
})

describe("rule 4: .preserve", () => {
  it("blocks removal of a preserved state dir, with the rule, and still removes its containers", () => {
    const w = worldAfterApply([bottle("keep", { preserve: true })])
    const p = plan([], observed(w), options("all"))
    const blocked = find(p.actions, "Blocked", `${S}/keep`)
    expect(blocked._tag === "Blocked" && blocked.rule).toBe("preserve")
    expect(blocked._tag === "Blocked" && blocked.error).toBe(false)
    expect(brief(p.actions)).toContain("RemoveContainer claude-bottle-keep-agent-1")
    expect(brief(p.actions).filter((x) => x.startsWith("RemoveStateDir"))).toEqual([])
  })
})

describe("rule 6: only what bottle made is removed", () => {
  it("a directory bottle never made (no metadata.json, or one not bottle's) is shown as unknown and left alone", () => {
    const w = emptyWorld()
    w.dirs.push(
      { name: "notes", path: `${S}/notes`, metadata: undefined, preserve: false },
      { name: "photos", path: `${S}/photos`, metadata: { name: "photos" }, preserve: false }
    )
    const p = plan([], observed(w), options("all"))
    expect(mutating(p.actions)).toEqual([])
    expect(p.notes).toEqual([
      "state/notes: unknown (no metadata.json bottle wrote); left alone",
      "state/photos: unknown (metadata.json names no prefix); left alone"
    ])
  })

  it("another install's state dir (another prefix) is never reaped, and never taken over by a bottle of that name", () => {
    const w = emptyWorld()
    w.dirs.push({ name: "w", path: `${S}/w`, metadata: { ...ours("w"), prefix: "claude-bottle-dev" }, preserve: false })
    const prune = plan([], observed(w), options("all"))
    expect(mutating(prune.actions)).toEqual([])
    expect(prune.notes).toContain("state/w: unknown (written by a bottle install with prefix 'claude-bottle-dev'); left alone")
    const apply = plan([bottle("w")], observed(w), options())
    expect(mutating(apply.actions)).toEqual([])
    expect(find(apply.actions, "Blocked", "w").cause).toContain("was written by a bottle install with prefix 'claude-bottle-dev'")
  })

  it("the older tool's state dir is ours when its compose project carries this prefix", () => {
    const w = emptyWorld()
    w.dirs.push(
      { name: "old", path: `${S}/old`, metadata: { legacyProject: "claude-bottle-researcher-m3hxd" }, preserve: false },
      { name: "alien", path: `${S}/alien`, metadata: { legacyProject: "bot-bottle-x" }, preserve: false }
    )
    expect(brief(mutating(plan([], observed(w), options("all")).actions))).toEqual([`RemoveStateDir ${S}/old`])
  })
})

describe("rule 5: live bottles and partial observation", () => {
  it("keeps the state dir of a bottle of that name live under another prefix (another install)", () => {
    const w = worldAfterApply([bottle("w")])
    w.containers = []
    w.networks = []
    w.others.push(container("claude-bottle-dev-w-agent-1", managed("w")))
    const p = plan([], observed(w), options("all"))
    expect(find(p.actions, "Blocked", `${S}/w`).cause).toContain("live under another prefix: container claude-bottle-dev-w-agent-1")
    expect(mutating(p.actions)).toEqual([])
  })

  it("removes the state dir of a bottle this plan tears down (its containers are not 'live elsewhere')", () => {
    const p = plan([], observed(worldAfterApply([bottle("gone")])), options("all"))
    expect(brief(mutating(p.actions))).toContain(`RemoveStateDir ${S}/gone`)
  })

  it("never removes the state dir of a bottle live in another set", () => {
    const w = worldAfterApply([bottle("shared", { set: "b" })])
    w.dirs[0] = { ...w.dirs[0]!, metadata: { ...w.dirs[0]!.metadata, set: "a" } }
    const p = plan([], observed(w), options("set", "a"))
    const blocked = find(p.actions, "Blocked", `${S}/shared`)
    expect(blocked._tag === "Blocked" && blocked.rule).toBe("live")
    expect(blocked.cause).toContain("claude-bottle-shared")
  })

  it("counts a running machine as live", () => {
    const w = worldAfterApply([bottle("vm", { backend: "smolmachines", set: "b" })])
    w.dirs[0] = { ...w.dirs[0]!, metadata: { ...w.dirs[0]!.metadata, set: "a" } }
    w.containers = []
    const p = plan([], observed(w), options("set", "a"))
    expect(find(p.actions, "Blocked", `${S}/vm`).cause).toContain("machine claude-bottle-vm (running)")
  })

  it("blocks every state-dir removal when an observer failed, but still prunes Docker", () => {
    const w = worldAfterApply([bottle("a"), bottle("b")])
    const p = plan([], observed(w, { smolvm: { _tag: "Failed", source: "smolvm", error: "machine ls exited 1" } }), options("all"))
    expect(brief(p.actions).filter((x) => x.startsWith("RemoveStateDir"))).toEqual([])
    const blocked = p.actions.filter((a) => a._tag === "Blocked")
    expect(blocked.map((a) => a._tag === "Blocked" && [a.rule, a.error])).toEqual([["observation incomplete", true], ["observation incomplete", true]])
    expect(blocked[0]!.cause).toContain("machine ls exited 1")
    expect(brief(p.actions)).toContain("RemoveContainer claude-bottle-a-agent-1")
    expect(p.partial).toHaveLength(1)
  })

  it("plans nothing for docker bottles when the engine could not be observed", () => {
    const p = plan([bottle("a")], observed(emptyWorld(), { docker: { _tag: "Failed", source: "docker", error: "connect ENOENT" } }), options("all"))
    expect(mutating(p.actions)).toEqual([])
    expect(p.actions.map((a) => a._tag)).toEqual(["Blocked"])
  })

  it("treats an uninstalled smolvm as no machines, but refuses smolmachines bottles", () => {
    const w = worldAfterApply([bottle("a")])
    const o = observed(w, { smolvm: { _tag: "Unavailable", source: "smolvm", reason: "smolvm not found on PATH" } })
    const p = plan([bottle("a"), bottle("vm", { backend: "smolmachines" })], o, options())
    expect(mutating(p.actions)).toEqual([])
    const blocked = find(p.actions, "Blocked", "vm")
    expect(blocked._tag === "Blocked" && blocked.rule).toBe("backend unavailable")
    expect(blocked.cause).toContain("smolvm not found")
  })
})

describe("sets", () => {
  it("refuses to apply a bottle that another set owns", () => {
    const w = worldAfterApply([bottle("a", { set: "team" })])
    const p = plan([bottle("a")], observed(w), options())
    expect(mutating(p.actions)).toEqual([])
    expect(find(p.actions, "Blocked", "a").cause).toContain("belongs to set 'team'")
  })
})

describe("smolmachines bottles", () => {
  const vm = bottle("vm", { backend: "smolmachines" })
  it("creates bundle network, bundle, then the machine once the bundle runs", () => {
    const p = plan([vm], observed(emptyWorld()), options())
    expect(brief(p.actions)).toEqual([
      `EnsureStateDir ${S}/vm`,
      "CreateNetwork claude-bottle-bundle-vm",
      "CreateContainer claude-bottle-sidecars-vm",
      "StartContainer claude-bottle-sidecars-vm",
      "CreateMachine claude-bottle-vm",
      "StartMachine claude-bottle-vm"
    ])
    expect(find(p.actions, "CreateMachine", "claude-bottle-vm").after).toContain("StartContainer:claude-bottle-sidecars-vm")
  })

  it("starts a stopped machine, replaces a changed one, replaces one whose bundle address moved", () => {
    const w = worldAfterApply([vm])
    w.machines[0] = { ...w.machines[0]!, state: "stopped" }
    expect(brief(mutating(plan([vm], observed(w), options()).actions))).toEqual(["StartMachine claude-bottle-vm"])

    const changed = plan([{ ...vm, env: { A: "1" } }], observed(worldAfterApply([vm])), options())
    expect(brief(mutating(changed.actions))).toEqual([`EnsureStateDir ${S}/vm`, "StopMachine claude-bottle-vm", "DeleteMachine claude-bottle-vm", "CreateMachine claude-bottle-vm", "StartMachine claude-bottle-vm"])

    const moved = worldAfterApply([vm])
    moved.containers[0] = { ...moved.containers[0]!, ips: { "claude-bottle-bundle-vm": "172.30.0.9" } }
    expect(find(plan([vm], observed(moved), options()).actions, "CreateMachine", "claude-bottle-vm").cause).toBe("bundle address changed (172.30.0.2 → 172.30.0.9)")
  })

  it("recreates a missing bundle and with it the machine", () => {
    const w = worldAfterApply([vm])
    w.containers = []
    const m = brief(mutating(plan([vm], observed(w), options()).actions))
    expect(m).toEqual(["CreateContainer claude-bottle-sidecars-vm", "StartContainer claude-bottle-sidecars-vm", "StopMachine claude-bottle-vm", "DeleteMachine claude-bottle-vm", "CreateMachine claude-bottle-vm", "StartMachine claude-bottle-vm"])
  })
})

describe("notes", () => {
  it("reports odd entries under state/ as left alone", () => {
    const o = observed(emptyWorld(), { state: { _tag: "Ok", value: { root: S, dirs: [], ignored: [{ name: "a file", reason: "not a bottle name" }] } } })
    expect(plan([], o, options("all")).notes).toEqual(["state/a file: not a bottle name; left alone"])
  })
})

describe("leftovers that may still be in use", () => {
  it("removes a bottle's state dir only after a label-less container named for it is gone", () => {
    const w = emptyWorld()
    w.containers.push(container("claude-bottle-foo-agent-1"))
    w.dirs.push({ name: "foo", path: `${S}/foo`, metadata: ours("foo"), preserve: false })
    const p = plan([], observed(w), options("all"))
    expect(find(p.actions, "RemoveStateDir", `${S}/foo`).after).toEqual(["RemoveContainer:claude-bottle-foo-agent-1"])
  })

  it("when smolvm fails, a bundle (which may serve a running machine) and its bottle's state stay", () => {
    const w = worldAfterApply([bottle("vm", { backend: "smolmachines" }), bottle("d")])
    w.machines = []
    const p = plan([], observed(w, { smolvm: { _tag: "Failed", source: "smolvm", error: "machine ls exited 1" } }), options("all"))
    const m = brief(mutating(p.actions))
    expect(m.filter((x) => /sidecars-vm|bundle-vm|state\/vm/.test(x))).toEqual([])
    for (const r of ["claude-bottle-sidecars-vm", "claude-bottle-bundle-vm", `${S}/vm`]) {
      const b = find(p.actions, "Blocked", r)
      expect(b._tag === "Blocked" && b.error).toBe(true)
      expect(b.cause).toContain("machine ls exited 1")
    }
    // The docker bottle's containers and networks still go.
    expect(m).toContain("RemoveContainer claude-bottle-d-agent-1")
    expect(m).toContain("RemoveNetwork claude-bottle-d_internal")
  })

  it("when smolvm is not installed, bundles are leftovers, but a smolmachines bottle's state stays", () => {
    const w = worldAfterApply([bottle("vm", { backend: "smolmachines" }), bottle("d")])
    w.machines = []
    const p = plan([], observed(w, { smolvm: { _tag: "Unavailable", source: "smolvm", reason: "smolvm not found on PATH" } }), options("all"))
    const m = brief(mutating(p.actions))
    expect(m).toContain("RemoveContainer claude-bottle-sidecars-vm")
    expect(m).toContain("RemoveNetwork claude-bottle-bundle-vm")
    expect(m).toContain(`RemoveStateDir ${S}/d`)
    expect(m).not.toContain(`RemoveStateDir ${S}/vm`)
    const b = find(p.actions, "Blocked", `${S}/vm`)
    expect(b._tag === "Blocked" && b.error).toBe(true)
    expect(b.cause).toContain("smolvm not found on PATH")
  })

  it("leaves alone a volume named with the prefix that belongs to someone else's project", () => {
    const w = emptyWorld()
    w.volumes.push({ name: "claude-bottle-data", labels: { [Compose.project]: "myapp" } })
    expect(mutating(plan([], observed(w), options("all")).actions)).toEqual([])
  })

  it("refuses a bottle whose state dir is a symlink (or a file): nothing is written through it", () => {
    const o = observed(emptyWorld(), { state: { _tag: "Ok", value: { root: S, dirs: [], ignored: [{ name: "a", reason: "a symlink, not a directory" }] } } })
    const p = plan([bottle("a")], o, options())
    expect(mutating(p.actions)).toEqual([])
    const b = find(p.actions, "Blocked", "a")
    expect(b._tag === "Blocked" && b.error).toBe(true)
    expect(b.cause).toContain("symlink")
  })
})

describe("a bottle that changes backend", () => {
  it("docker → smolmachines: the old agent, proxy and networks go, before the machine is made", () => {
    const w = worldAfterApply([bottle("a")])
    const p = plan([bottle("a", { backend: "smolmachines" })], observed(w), options())
    const m = brief(mutating(p.actions))
    for (const r of ["RemoveContainer claude-bottle-a-agent-1", "RemoveContainer claude-bottle-a-egress-1", "RemoveNetwork claude-bottle-a_internal", "RemoveNetwork claude-bottle-a_egress", "CreateMachine claude-bottle-a"]) {
      expect(m).toContain(r)
    }
    expect(find(p.actions, "RemoveContainer", "claude-bottle-a-agent-1").cause).toBe("bottle moved to backend smolmachines")
    expect(ancestors(p.actions, find(p.actions, "CreateMachine", "claude-bottle-a"))).toContain("RemoveContainer:claude-bottle-a-agent-1")
  })

  it("smolmachines → docker: the machine is stopped and deleted, and its bundle goes, before the agent is made", () => {
    const w = worldAfterApply([bottle("a", { backend: "smolmachines" })])
    const p = plan([bottle("a")], observed(w), options())
    const m = brief(mutating(p.actions))
    for (const r of ["StopMachine claude-bottle-a", "DeleteMachine claude-bottle-a", "RemoveContainer claude-bottle-sidecars-a", "RemoveNetwork claude-bottle-bundle-a", "CreateContainer claude-bottle-a-agent-1"]) {
      expect(m).toContain(r)
    }
    expect(ancestors(p.actions, find(p.actions, "CreateContainer", "claude-bottle-a-agent-1"))).toContain("DeleteMachine:claude-bottle-a")
  })

  it("smolmachines → docker while smolvm cannot be asked: refused, nothing done", () => {
    const w = worldAfterApply([bottle("a", { backend: "smolmachines" })])
    w.machines = []
    const p = plan([bottle("a")], observed(w, { smolvm: { _tag: "Failed", source: "smolvm", error: "machine ls exited 1" } }), options())
    expect(mutating(p.actions)).toEqual([])
    expect(find(p.actions, "Blocked", "a").cause).toContain("machine may still be running")
  })
})

describe("odd containers of a bottle's project", () => {
  it("a container named as the agent but labelled as another service is the agent, replaced once", () => {
    const w = worldAfterApply([bottle("a")])
    w.containers = w.containers.map((c) => (c.name === "claude-bottle-a-agent-1" ? { ...c, labels: { [Compose.project]: "claude-bottle-a", [Compose.service]: "claude" } } : c))
    const p = plan([bottle("a")], observed(w), options())
    expect(brief(mutating(p.actions))).toEqual([
      "RemoveContainer claude-bottle-a-agent-1",
      "CreateContainer claude-bottle-a-agent-1",
      "StartContainer claude-bottle-a-agent-1",
      "VerifyBottle claude-bottle-a-agent-1"
    ])
  })
})

describe("images bottle builds", () => {
  it("two bottles built from the same context share one build, and both agents wait for it", () => {
    const build = { context: "/home/u/repo/images/claude-code", dockerfile: "Dockerfile", args: {}, hash: "abc123" }
    const image = "bottle-local/build:abc123"
    const p = plan([bottle("a", { image, build }), bottle("b", { image, build })], observed(emptyWorld()), options())
    const builds = p.actions.filter((a) => a._tag === "BuildImage")
    expect(builds.map((a) => a.resource)).toEqual([image])
    for (const name of ["a", "b"]) expect(ancestors(p.actions, find(p.actions, "CreateContainer", `claude-bottle-${name}-agent-1`)).has(builds[0]!.id)).toBe(true)
  })
})
