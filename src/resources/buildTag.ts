/** The tag bottle gives an agent image it builds: by bottle, then by what the build sees. Pure. */
export const builtImageTag = (prefix: string, bottle: string, contextHash: string) => `${prefix}-${bottle}-agent:${contextHash.slice(0, 16)}`

/** The tag of a sidecar image bottle builds from its own recipe: by recipe, then by what the build sees. Pure. */
export const sidecarImageTag = (prefix: string, recipe: string, contextHash: string) => `${prefix}-${recipe}:${contextHash.slice(0, 16)}`
