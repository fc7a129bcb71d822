/** The tag bottle gives an agent image it builds: by bottle, then by what the build sees. Pure. */
export const builtImageTag = (prefix: string, bottle: string, contextHash: string) => `${prefix}-${bottle}-agent:${contextHash.slice(0, 16)}`
