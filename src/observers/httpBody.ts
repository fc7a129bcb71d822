/** Reading a whole HTTP answer, but never more than a limit: a broken or hostile server cannot make bottle hold more. */
import type { HttpClientResponse } from "@effect/platform"
import { Effect, Stream } from "effect"

/**
 * The answer's bytes, up to `limit`; `tooLarge` and `broken` make the
 * caller's errors. Chunks are kept and joined once (linear in the size).
 * Reading an answer also frees its keep-alive socket.
 */
export const readBounded = <E>(
  res: HttpClientResponse.HttpClientResponse,
  limit: number,
  tooLarge: () => E,
  broken: (detail: string) => E
): Effect.Effect<Buffer, E> =>
  res.stream.pipe(
    Stream.mapError((e) => broken(e.message)),
    Stream.runFoldEffect({ chunks: [] as Array<Uint8Array>, size: 0 }, (acc, chunk) => {
      const size = acc.size + chunk.length
      if (size > limit) return Effect.fail(tooLarge())
      acc.chunks.push(chunk)
      return Effect.succeed({ chunks: acc.chunks, size })
    }),
    Effect.map(({ chunks }) => Buffer.concat(chunks))
  )
