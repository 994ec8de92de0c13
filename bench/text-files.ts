/** Context files for the benchmarks that need a large one. */

/** n MiB of words from a small vocabulary, one file per MiB: it packs about as well as source code. */
export function textFiles(mib: number): Record<string, string> {
  const words = Array.from({ length: 4096 }, (_, i) => (i * 2654435761).toString(36).slice(0, 3 + (i % 6)));
  const files: Record<string, string> = {};
  for (let i = 0; i < mib; i++) {
    let text = '';
    while (text.length < 1 << 20) text += `${words[Math.floor(Math.random() * words.length)]} `;
    files[`src/f${i}.txt`] = text.slice(0, 1 << 20);
  }
  return files;
}
