/** bottle's version: one place for `--version` and the command tree. */
export const VERSION = "0.1.0"
