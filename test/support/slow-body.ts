/** Request bodies that arrive slowly, as from a client on a slow link. */

/** A request body that trickles `bytes` out in 30 pieces over about `ms`. */
export function slowBody(bytes: Buffer, ms: number): ReadableStream<Uint8Array> {
  const chunks = 30;
  const size = Math.ceil(bytes.length / chunks);
  let i = 0;
  return new ReadableStream({
    async pull(controller) {
      if (i >= chunks) return controller.close();
      await new Promise((resolve) => setTimeout(resolve, ms / chunks));
      controller.enqueue(bytes.subarray(i * size, (i + 1) * size));
      i++;
    },
  });
}
