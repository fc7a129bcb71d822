/**
 * The fence's facts: what bottle would create and what the Engine reports
 * read the same way, so a container as made is in sync, and each way out
 * opened by hand is drift naming itself (and never a secret's value).
 */
import { describe, expect, it } from "vitest"
import { desiredFacts, fenceDrift, inspectFacts, type ContainerInspect, type ImageDefaults } from "../src/resources/fence.js"
import { realiseDocker } from "../src/resources/realise.js"
import { bottle, ctx } from "./support/fixtures.js"

const image: ImageDefaults = { env: ["PATH=/bin"], cmd: ["sleep", "infinity"], entrypoint: null, user: "", volumes: ["/data"] }
const agent = realiseDocker(bottle("a", { env: { TOKEN: "s3cret" } }), ctx).containers.find((c) => c.service === "agent")!

/** The agent as Docker 20.10 reports it right after bottle made it. */
const asMade = (): ContainerInspect => {
  const h = agent.body.HostConfig
  return {
    Id: "0123456789abcdef0123",
    Name: `/${agent.name}`,
    Config: { Image: agent.body.Image, Hostname: "a", User: "", Env: [...image.env, ...(agent.body.Env ?? [])], Cmd: [...image.cmd!], Entrypoint: null },
    HostConfig: { ...h, CapAdd: null, Privileged: false, IpcMode: "private", PidMode: "", Devices: [], PortBindings: {}, RestartPolicy: { Name: "no", MaximumRetryCount: 0 }, Dns: [], ExtraHosts: null },
    Mounts: [
      ...((h["Binds"] as ReadonlyArray<string>).map((b) => {
        const [Source, Destination, mode] = b.split(":")
        return { Type: "bind", Source, Destination, RW: mode !== "ro" }
      })),
      { Type: "volume", Name: "f".repeat(64), Destination: "/data", RW: true }
    ],
    NetworkSettings: { Networks: { "claude-bottle-a_internal": { Aliases: ["agent", "0123456789ab", "a"] } } }
  }
}
const drift = (edit: (c: ContainerInspect & { HostConfig: Record<string, unknown> }) => void) => {
  const c = structuredClone(asMade()) as ContainerInspect & { HostConfig: Record<string, unknown> }
  edit(c)
  return fenceDrift(desiredFacts(agent.body, agent.connect, image), inspectFacts(c, image))
}

describe("the fence's facts", () => {
  it("a container as bottle made it is in sync (engine-added aliases and an image's own anonymous volume are not drift)", () => {
    expect(drift(() => undefined)).toBeUndefined()
  })

  it.each([
    ["attached to the default bridge", (c: any) => { c.NetworkSettings.Networks.bridge = { Aliases: null } }, "drift: attached to network bridge"],
    ["the engine's socket mounted", (c: any) => { c.Mounts.push({ Type: "bind", Source: "/var/run/docker.sock", Destination: "/var/run/docker.sock", RW: true }) }, "drift: mounts bind /var/run/docker.sock:/var/run/docker.sock:rw"],
    ["a named volume (it may bind any host path)", (c: any) => { c.Mounts.push({ Type: "volume", Name: "host-root", Destination: "/h", RW: true }) }, "drift: mounts volume host-root:/h:rw"],
    ["a capability added", (c: any) => { c.HostConfig.CapAdd = ["CAP_SYS_ADMIN"] }, "drift: capabilities added: SYS_ADMIN"],
    ["privileged", (c: any) => { c.HostConfig.Privileged = true }, "drift: privileged is true (want false)"],
    ["the host's pid namespace", (c: any) => { c.HostConfig.PidMode = "host" }, "drift: pid namespace is host (want private)"],
    ["the host's network namespace", (c: any) => { c.HostConfig.NetworkMode = "host" }, "drift: network mode is host (want own namespace)"],
    ["a device", (c: any) => { c.HostConfig.Devices = [{ PathOnHost: "/dev/kvm" }] }, "drift: devices is /dev/kvm (want none)"],
    ["a published port", (c: any) => { c.HostConfig.PortBindings = { "22/tcp": [{ HostPort: "2222" }] } }, "drift: published ports is 22/tcp (want none)"],
    ["no pids limit", (c: any) => { c.HostConfig.PidsLimit = -1 }, "drift: pids limit is none (want 1024)"],
    ["restart always", (c: any) => { c.HostConfig.RestartPolicy = { Name: "always" } }, "drift: restart policy is always (want no)"],
    ["no-new-privileges dropped", (c: any) => { c.HostConfig.SecurityOpt = [] }, "drift: security options is none (want no-new-privileges)"],
    ["another command", (c: any) => { c.Config.Cmd = ["sh", "-c", "nc -l -p 1"] }, "drift: command:"],
    ["another image", (c: any) => { c.Config.Image = "evil/agent:1" }, "drift: image is docker.io/evil/agent:1 (want docker.io/library/claude-bottle:latest)"],
    ["the proxy variables changed", (c: any) => { c.Config.Env = c.Config.Env.map((e: string) => (e.startsWith("HTTPS_PROXY=") ? "HTTPS_PROXY=" : e)) }, "drift: environment differs: HTTPS_PROXY"]
  ])("%s", (_what, edit, cause) => {
    expect(drift(edit)).toContain(cause)
  })

  it("names a changed variable, never its value", () => {
    const d = drift((c: any) => { c.Config.Env = c.Config.Env.map((e: string) => (e.startsWith("TOKEN=") ? "TOKEN=other" : e)) })
    expect(d).toBe("drift: environment differs: TOKEN")
    expect(d).not.toContain("s3cret")
  })

  it("reads Podman's spelling of the same container as in sync", () => {
    expect(drift((c: any) => {
      c.HostConfig.CapDrop = ["CAP_AUDIT_WRITE", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_MKNOD", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID", "CAP_SYS_CHROOT", "CAP_SYS_ADMIN"]
      c.HostConfig.SecurityOpt = ["no-new-privileges"]
      c.HostConfig.NetworkMode = "bridge"
      c.Config.Env.push("container=podman", "HOSTNAME=a", "TERM=xterm")
      c.Mounts.push({ Type: "tmpfs", Destination: "/run" })
    })).toBeUndefined()
  })
})
