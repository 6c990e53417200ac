// tokenizer_peer.mjs — benchmark peer for bench/bench_tokenizer.c: encodes the same texts
// with @huggingface/tokenizers (Tokenizers.js, the JavaScript port of HF tokenizers) and
// prints one JSON line: {peer, version, node, texts, bytes, tokens, checksum, seconds,
// cpu_seconds, mb_per_s} (best of REPEATS passes by wall time).
// usage: node tokenizer_peer.mjs TOKENIZER_DIR TEXTS.json REPEATS
// (TEXTS.json: a JSON array of strings; checksum: FNV-1a over all ids, as in the C bench)
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import { Tokenizer } from "@huggingface/tokenizers";

const [dir, textsPath, repeatsArg] = process.argv.slice(2);
if (!dir || !textsPath) {
  console.error("usage: node tokenizer_peer.mjs TOKENIZER_DIR TEXTS.json [REPEATS]");
  process.exit(2);
}
const repeats = Math.max(1, parseInt(repeatsArg || "3", 10));
function readJson(p) {
  let buf = fs.readFileSync(p);
  if (p.endsWith(".gz")) buf = zlib.gunzipSync(buf);
  return JSON.parse(buf.toString("utf8"));
}
let tjPath = path.join(dir, "tokenizer.json");
if (!fs.existsSync(tjPath)) tjPath += ".gz";
const cfgPath = path.join(dir, "tokenizer_config.json");
const tok = new Tokenizer(readJson(tjPath), fs.existsSync(cfgPath) ? readJson(cfgPath) : {});
const texts = readJson(textsPath);
const version = JSON.parse(fs.readFileSync(
  new URL("./node_modules/@huggingface/tokenizers/package.json", import.meta.url), "utf8")).version;

let bytes = 0;
for (const t of texts) bytes += Buffer.byteLength(t, "utf8");
for (let i = 0; i < Math.min(200, texts.length); i++) tok.encode(texts[i], { add_special_tokens: false });

let best = Infinity, bestCpu = 0, tokens = 0, checksum = 0;
for (let r = 0; r < repeats; r++) {
  let n = 0, h = 2166136261;
  const t0 = process.hrtime.bigint(), c0 = process.cpuUsage();
  for (const t of texts) {
    const ids = tok.encode(t, { add_special_tokens: false }).ids;
    n += ids.length;
    for (const id of ids) h = Math.imul(h ^ id, 16777619) >>> 0;
  }
  const dt = Number(process.hrtime.bigint() - t0) / 1e9, c = process.cpuUsage(c0);
  if (dt < best) { best = dt; bestCpu = (c.user + c.system) / 1e6; }
  tokens = n;
  checksum = h >>> 0;
}
console.log(JSON.stringify({
  peer: "@huggingface/tokenizers", version, node: process.versions.node, texts: texts.length, bytes, tokens,
  checksum, seconds: best, cpu_seconds: bestCpu, mb_per_s: bytes / 1e6 / best,
}));
