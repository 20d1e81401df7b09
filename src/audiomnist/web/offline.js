"use strict";
// The page `audiomnist export MODEL --web DIR` writes: the model runs in the browser on onnxruntime-web (WebAssembly),
// no server code. model.onnx is the whole pipeline (window -> probabilities); the lines below do what
// audiomnist.infer.Classifier does before it: decode, mono, resample to the model's rate, the no-digit gate
// (infer.audio_problem), and the window centred on the word (audio.centre_on_speech, audio.fit_windows).
// A digit-string model (CFG.task "strings") takes the whole utterance instead and gives (frames, 11) CTC
// probabilities, decoded greedily here as audiomnist.ctc.greedy does (StringRecognizer.transcribe).
const CFG = __CONFIG__;
const $ = (id) => document.getElementById(id);
const TAP = `registerProcessor("tap", class extends AudioWorkletProcessor {
  process(inputs) { if (inputs[0][0]) this.port.postMessage(inputs[0][0].slice(0)); return true; }
});`;
const STRINGS = CFG.task === "strings";
const classes = STRINGS ? [] : CFG.classes;
let session = null;
let rescorer = null;  // a number page's single-digit model (CFG.rescorer), or none

function setState(state, error = "") {
  document.body.dataset.state = state;
  $("error").textContent = error;
  $("record").disabled = state === "recording" || state === "working" || state === "loading";
}

function drawBars(probabilities = {}, label = null) {
  // The answer is highlighted: a digit can win with "none" the likelier class, under the model's none_threshold.
  const top = label ?? Object.keys(probabilities).reduce((a, b) => (probabilities[a] >= probabilities[b] ? a : b), null);
  $("bars").replaceChildren(...classes.map((c) => {
    const p = probabilities[c] ?? 0;
    const row = document.createElement("div");
    row.className = c === top ? "row top" : "row";
    row.innerHTML = '<span></span><div class="track"><div class="bar"></div></div><span class="val"></span>';
    row.children[0].textContent = c;
    row.querySelector(".bar").style.width = `${(100 * p).toFixed(1)}%`;
    row.children[2].textContent = `${(100 * p).toFixed(1)}%`;
    return row;
  }));
}

function showResult(r) {
  $("digit").textContent = r.label === null ? "no digit heard" : r.label;
  $("digit").classList.toggle("none", r.label === null);
  $("prob").textContent = r.label === null ? `(${r.reason})` : `${(100 * r.probability).toFixed(1)}% sure`;
  const timing = `${r.latency_ms.toFixed(1)} ms in the browser`;
  $("meta").textContent = `${r.filename} · ${r.duration_s} s at ${CFG.sample_rate} Hz · ${timing}`;
  drawBars(r.probabilities, r.label);
}

function showNumber(r) {
  $("digits").textContent = r.digits === "" ? (r.reason ? `no digits heard (${r.reason})` : "no digits heard") : r.digits;
  $("digits").classList.toggle("none", r.digits === "");
  $("words").replaceChildren(...r.words.map((w) => {
    const chip = document.createElement("span");
    chip.className = "word";
    chip.innerHTML = "<b></b><small></small>";
    chip.children[0].textContent = w.digit;
    chip.children[1].textContent = `${Math.round(100 * w.confidence)}% · ${w.time.toFixed(2)} s`;
    return chip;
  }));
  const timing = `${r.latency_ms.toFixed(1)} ms in the browser`;
  $("number-meta").textContent = `${r.filename} · ${r.duration_s} s at ${CFG.sample_rate} Hz · ${timing}`;
}

// infer.audio_problem: why a mono clip at the model's rate cannot hold a digit, or null.
function audioProblem(x, sr) {
  for (const v of x) if (!Number.isFinite(v) || Math.abs(v) > CFG.gate.max_abs_sample) return "bad samples";
  const frame = Math.max(1, Math.round(CFG.gate.frame_s * sr));
  if (x.length < CFG.gate.min_signal_s * sr) return "too short";
  let loud = 0;
  for (let f = 0; f + frame <= x.length; f += frame) {
    let mean = 0, power = 0;
    for (let i = f; i < f + frame; i++) mean += x[i];
    mean /= frame;
    for (let i = f; i < f + frame; i++) power += (x[i] - mean) ** 2;
    if (10 * Math.log10(power / frame + 1e-20) >= CFG.gate.min_speech_dbfs) loud++;
  }
  if (loud === 0) return "no speech";
  if (loud * frame < CFG.gate.min_active_s * sr) return "too short";
  return voicedFrames(x, sr) < CFG.gate.min_voiced_frames ? "no speech" : null;
}

// audio.voiced_frames at the model's rate: frames above the speech floor whose YIN measure (the difference function
// over its running mean, at its lowest over the lags of a voice's pitch) is under the limit, up to min_voiced_frames.
function voicedFrames(x, sr) {
  const g = CFG.gate;
  const win = Math.round(g.pitch_frame_s * sr), hop = Math.max(1, Math.round(g.frame_s * sr));
  const tmin = Math.max(1, Math.floor(sr / g.pitch_hz[1])), tmax = Math.floor(sr / g.pitch_hz[0]);
  const p = new Float64Array(Math.max(x.length, win + tmax));
  p.set(x);
  let count = 0;
  for (let s = 0; s + win + tmax <= p.length; s += hop) {
    let mean = 0, power = 0;
    for (let j = s; j < s + win; j++) mean += p[j];
    mean /= win;
    for (let j = s; j < s + win; j++) power += (p[j] - mean) ** 2;
    if (10 * Math.log10(power / win + 1e-20) < g.min_speech_dbfs) continue;
    let running = 0, lowest = Infinity;
    for (let t = 1; t <= tmax; t++) {
      let d = 0;
      for (let j = s; j < s + win; j++) d += (p[j] - p[j + t]) ** 2;
      running += d;
      if (t >= tmin) lowest = Math.min(lowest, running > 0 ? (d * t) / running : 1);
    }
    if (lowest < g.max_aperiodicity && ++count >= g.min_voiced_frames) break;
  }
  return count;
}

// audio.crop_on_energy: the n-sample stretch with the most energy, from the same float64 running sums.
function cropOnEnergy(x, n) {
  if (x.length <= n) return x;
  const c = new Float64Array(x.length + 1);
  for (let i = 0; i < x.length; i++) c[i + 1] = c[i] + x[i] * x[i];
  let best = 0;
  for (let s = 1; s + n <= x.length; s++) if (c[s + n] - c[s] > c[best + n] - c[best]) best = s;
  return x.subarray(best, best + n);
}

// audio.speech_span: the word's first and last loud enough frame, from the same float64 running sums of squares.
function speechSpan(x, sr) {
  const g = CFG.gate, frame = Math.max(1, Math.round(g.frame_s * sr)), whole = Math.floor(x.length / frame) * frame;
  if (whole === 0) return [0, x.length];
  const power = [];
  let c = 0, prev = 0;
  for (let i = 0; i < whole; i++) {
    c += x[i] * x[i];
    if ((i + 1) % frame === 0) { power.push(c - prev); prev = c; }
  }
  let peak = power[0], floor = power[0];
  for (const p of power) { peak = Math.max(peak, p); floor = Math.min(floor, p); }
  floor *= g.speech_over_floor;
  if (floor > peak) return [0, x.length];  // no frame stands out from the others: no quiet stretch to leave out
  const bar = Math.max(peak * g.speech_below_peak, floor);
  return [power.findIndex((p) => p >= bar) * frame, (power.findLastIndex((p) => p >= bar) + 1) * frame];
}

// audio.centre_on_speech + audio.fit_windows: the window centred on the word, speech longer than it cropped on energy.
function placeWindow(x, cfg = CFG) {
  const n = cfg.num_samples, [start, end] = speechSpan(x, cfg.sample_rate);
  if (end - start > n) return fitWindow(cropOnEnergy(x, n), cfg);
  const mid = Math.floor((start + end) / 2), first = Math.max(0, mid - Math.floor(n / 2));
  return fitWindow(x.subarray(first, first + n), cfg, mid - first);
}

// audio.eval_noise: torch.rand(n) of a generator seeded with 0 (MT19937, low 24 bits of each draw).
function evalNoise(n) {
  const mt = new Uint32Array(624);
  mt[0] = 0;
  for (let i = 1; i < 624; i++) mt[i] = (Math.imul(1812433253, mt[i - 1] ^ (mt[i - 1] >>> 30)) + i) >>> 0;
  let k = 624;
  const out = new Float32Array(n);
  for (let j = 0; j < n; j++) {
    if (k >= 624) {
      for (let i = 0; i < 624; i++) {
        const y = (mt[i] & 0x80000000) | (mt[(i + 1) % 624] & 0x7fffffff);
        mt[i] = mt[(i + 397) % 624] ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0);
      }
      k = 0;
    }
    let y = mt[k++];
    y ^= y >>> 11; y ^= (y << 7) & 0x9d2c5680; y ^= (y << 15) & 0xefc60000; y ^= y >>> 18;
    out[j] = Math.fround(((y >>> 0) & 0xffffff) * 2 ** -24);
  }
  return out;
}

// audio.noise_floor: min and max of the clip's quietest whole 10 ms frame (its own silence).
function noiseFloor(x, sr) {
  const frame = Math.max(1, Math.floor(sr / 100));
  let lo = Infinity, hi = -Infinity, span = Infinity;
  const whole = x.length < frame ? 1 : Math.floor(x.length / frame);
  for (let f = 0; f < whole; f++) {
    const part = x.length < frame ? x : x.subarray(f * frame, (f + 1) * frame);
    let a = Infinity, b = -Infinity;
    for (const v of part) { a = Math.min(a, v); b = Math.max(b, v); }
    if (b - a < span) { span = b - a; lo = a; hi = b; }
  }
  return [lo, hi];
}

// The fixed noise pattern scaled into [lo, hi): what a window or an utterance is padded with.
function background(n, lo, hi) {
  const noise = evalNoise(n), scale = Math.fround(hi - lo), out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.fround(Math.fround(noise[i] * scale) + lo);
  return out;
}

// audio.fit_windows for one clip: centred (or its sample `centre` at the window's centre), zero padding or
// (pad_mode "noise") the clip's own quietest 10 ms.
function fitWindow(x, cfg = CFG, centre = null) {
  const n = cfg.num_samples;
  const out = new Float32Array(n);
  if (cfg.pad_mode === "noise" && x.length) out.set(background(n, ...noiseFloor(x, cfg.sample_rate)));
  const offset = centre === null ? Math.floor((n - x.length) / 2) : Math.floor(n / 2) - centre;
  const start = Math.min(Math.max(offset, 0), n);
  const length = Math.min(offset + x.length, n) - start;
  if (length > 0) out.set(x.subarray(start - offset, start - offset + length), start);
  return out;
}

async function toModelRate(channels, rate) {
  const mono = new Float32Array(channels[0].length);
  for (const c of channels) c.forEach((v, i) => { mono[i] += v / channels.length; });
  if (rate === CFG.sample_rate) return mono;
  const length = Math.max(1, Math.round(mono.length * CFG.sample_rate / rate));
  const offline = new OfflineAudioContext(1, length, CFG.sample_rate);
  const buffer = offline.createBuffer(1, mono.length, rate);
  buffer.copyToChannel(mono, 0);
  const source = offline.createBufferSource();
  source.buffer = buffer;
  source.connect(offline.destination);
  source.start();
  return (await offline.startRendering()).getChannelData(0);
}

async function decodeFile(file) {
  const bytes = await file.arrayBuffer();
  // Decoding in a context at the model's rate resamples as it decodes (nothing to do for a file at that rate).
  const ctx = new OfflineAudioContext(1, 1, CFG.sample_rate);
  let audio;
  try {
    audio = await ctx.decodeAudioData(bytes);
  } catch (e) {
    throw new Error(`${file.name}: not a readable audio file (${e.message || e})`);
  }
  return toModelRate([...Array(audio.numberOfChannels).keys()].map((c) => audio.getChannelData(c)), audio.sampleRate);
}

async function classify(x, filename) {
  if (session === null) throw new Error("the model is not loaded (yet): see the message above, or reload the page");
  const t0 = performance.now();
  const base = { filename, duration_s: +(x.length / CFG.sample_rate).toFixed(4) };
  const why = audioProblem(x, CFG.sample_rate);
  if (why !== null) {
    return { ...base, label: null, reason: why, probability: 0, probabilities: {}, latency_ms: performance.now() - t0 };
  }
  let peak = 0;
  for (const v of x) peak = Math.max(peak, Math.abs(v));
  const clip = peak > 1 ? x.map((v) => v / peak) : x;
  const window = placeWindow(clip);
  const feeds = { [CFG.input]: new ort.Tensor("float32", window, [1, CFG.num_samples]) };
  const p = (await session.run(feeds))[CFG.output].data;
  // infer.Classifier: the model's "none" class (trained on non-digits) is an answer of no digit, with its reason;
  // with the model's none_threshold, only once p(none) reaches it (else the best digit).
  const noneAt = classes.indexOf(CFG.none_class);
  const thr = noneAt >= 0 && CFG.none_threshold != null ? CFG.none_threshold : null;
  let best = -1;
  p.forEach((v, i) => { if ((thr === null || i !== noneAt) && (best < 0 || v > p[best])) best = i; });
  if (thr !== null && p[noneAt] >= thr) best = noneAt;
  const probabilities = Object.fromEntries(classes.map((c, i) => [c, p[i]]));
  const none = classes[best] === CFG.none_class;
  return {
    ...base, label: none ? null : classes[best], reason: none ? "not a digit" : null, probability: p[best],
    probabilities, latency_ms: performance.now() - t0,
  };
}

// ctc.greedy: the best class of each frame, repeats merged, blanks (class 0) dropped; a digit's confidence is its
// peak probability over its run of frames, and its time the end of that frame (recognizer.transcribe).
function greedyCtc(p, frames, k) {
  const words = [];
  let prev = 0;
  for (let t = 0; t < frames; t++) {
    let best = 0;
    for (let c = 1; c < k; c++) if (p[t * k + c] > p[t * k + best]) best = c;
    const q = p[t * k + best];
    if (best !== 0 && best !== prev) words.push({ digit: CFG.classes[best], confidence: q, frame: t });
    else if (best !== 0 && q > words[words.length - 1].confidence) Object.assign(words[words.length - 1], { confidence: q, frame: t });
    prev = best;
  }
  return mergeClose(words, p, k);
}

// ctc.word_segments: each digit's word, from the previous word's end (its peak + peak_to_end_s) to its own.
function wordSegments(words, x, r) {
  const sr = CFG.sample_rate, ends = words.map((w) => w.frame * CFG.frame_s + r.peak_to_end_s);
  return ends.map((end, i) => {
    const start = i ? ends[i - 1] : end - r.first_word_s;
    const lo = Math.max(0, Math.trunc((start - r.pad_s) * sr));
    return x.subarray(lo, Math.min(x.length, Math.max(Math.trunc((end + r.pad_s) * sr), lo + 1)));
  });
}

// recognizer.StringRecognizer: the single-digit model hears each word again; the digit is the argmax of the product
// of both models' probabilities over the ten digits. A word without speech keeps the string model's answer.
async function rescoreWords(words, p, k, x) {
  const r = CFG.rescorer, n = r.num_samples;
  const segs = wordSegments(words, x, r);
  const heard = segs.map((s, i) => i).filter((i) => audioProblem(segs[i], CFG.sample_rate) === null);
  if (!heard.length) return words;
  const batch = new Float32Array(heard.length * n);
  heard.forEach((i, j) => batch.set(placeWindow(segs[i], r), j * n));
  const out = (await rescorer.run({ [CFG.input]: new ort.Tensor("float32", batch, [heard.length, n]) }))[CFG.output];
  const cols = [...Array(10).keys()].map((d) => r.classes.indexOf(String(d)));
  const kc = out.dims[1];
  return words.map((w, i) => {
    const j = heard.indexOf(i);
    if (j < 0) return w;
    let ps = 0, qs = 0;
    for (let d = 0; d < 10; d++) { ps += p[w.frame * k + d + 1]; qs += out.data[j * kc + cols[d]]; }
    const joint = cols.map((c, d) => Math.sqrt(Math.max(p[w.frame * k + d + 1] / Math.max(ps, 1e-12), 0) * Math.max(out.data[j * kc + c] / Math.max(qs, 1e-12), 0)));
    const total = Math.max(joint.reduce((a, b) => a + b, 0), 1e-12);
    let best = 0;
    joint.forEach((v, d) => { if (v > joint[best]) best = d; });
    return { digit: String(best), confidence: joint[best] / total, frame: w.frame };
  });
}

// ctc.merge_close: peaks fewer than CFG.min_gap frames apart are one word; its digit is the likeliest over the frames
// spanned (summed probabilities), at that digit's peak frame.
function mergeClose(words, p, k) {
  const out = [];
  for (const w of words) {
    const last = out[out.length - 1];
    if (last === undefined || w.frame - last.frame >= CFG.min_gap) { out.push(w); continue; }
    let best = 1, bestSum = -1;
    for (let c = 1; c < k; c++) {
      let sum = 0;
      for (let t = last.frame; t <= w.frame; t++) sum += p[t * k + c];
      if (sum > bestSum) { best = c; bestSum = sum; }
    }
    let frame = last.frame;
    for (let t = last.frame; t <= w.frame; t++) if (p[t * k + best] > p[frame * k + best]) frame = t;
    out[out.length - 1] = { digit: CFG.classes[best], confidence: p[frame * k + best], frame };
  }
  return out;
}

// tempo.change_tempo: WSOLA, the recording said `factor` times as fast with its pitch kept. Sums and products in
// doubles, each output sample stored as float32 after each addition, as Python does: the same samples.
function changeTempo(x, sr, factor) {
  const n = Math.max(2, Math.floor(Math.trunc(CFG.tempo.frame_s * sr) / 2) * 2);
  const hop = n / 2, search = Math.max(1, Math.trunc(CFG.tempo.search_s * sr)), base = search + hop;
  const win = new Float32Array(n);
  for (let i = 0; i < n; i++) win[i] = 0.5 - 0.5 * Math.cos(2 * Math.PI * i / n);
  const outLen = Math.floor(x.length / factor + 0.5), frames = Math.floor(outLen / hop) + 2;
  const pad = new Float64Array(base + x.length + n + 2 * search + 2 * hop);
  pad.set(x, base);
  const y = new Float32Array(frames * hop + n);
  let prev = -hop;
  for (let k = 0; k < frames; k++) {
    const nominal = Math.min(Math.max(Math.floor((k - 1) * hop * factor + 0.5), -base), x.length + hop);
    let start = nominal;
    if (k > 0) {  // the candidate that best continues the previous frame; the first of equal best
      const lo = Math.max(nominal - search, -base), follow = base + prev + hop;
      let best = -Infinity;
      for (let j = 0; j <= 2 * search; j++) {
        let c = 0;
        for (let i = 0; i < n; i++) c += pad[base + lo + j + i] * pad[follow + i];
        if (c > best) { best = c; start = lo + j; }
      }
    }
    for (let i = 0; i < n; i++) y[k * hop + i] += win[i] * pad[base + start + i];
    prev = start;
  }
  return y.slice(hop, hop + outLen);
}

// ctc.steady_tempo: a number whose digits came faster than CFG.tempo.steady_pace a second is heard again slowed.
function steadyTempo(hits) {
  const n = hits.length;
  if (n < 2 || hits[n - 1].frame <= hits[0].frame) return 1;
  const heard = (n - 1) / ((hits[n - 1].frame - hits[0].frame) * CFG.frame_s);
  return heard <= CFG.tempo.steady_pace ? 1 : Math.max(CFG.tempo.steady_pace / heard, CFG.tempo.slowest);
}

// ctc.pad_edges: the recording's own background before and after it, so a word cut off by its end is still heard.
async function decodePadded(scaled) {
  const lead = Math.trunc(CFG.lead_pad_s * CFG.sample_rate), tail = Math.trunc(CFG.tail_pad_s * CFG.sample_rate);
  const pad = background(lead + tail, ...noiseFloor(scaled, CFG.sample_rate));
  const clip = new Float32Array(lead + scaled.length + tail);
  clip.set(pad.subarray(0, lead));
  clip.set(scaled, lead);
  clip.set(pad.subarray(lead), lead + scaled.length);
  const out = (await session.run({ [CFG.input]: new ort.Tensor("float32", clip, [1, clip.length]) }))[CFG.output];
  return { clip, out, lead, hits: greedyCtc(out.data, out.dims[0], out.dims[1]) };
}

async function transcribe(x, filename) {
  if (session === null) throw new Error("the model is not loaded (yet): see the message above, or reload the page");
  const t0 = performance.now();
  const base = { filename, duration_s: +(x.length / CFG.sample_rate).toFixed(4) };
  const why = audioProblem(x, CFG.sample_rate);
  if (why !== null) return { ...base, digits: "", words: [], reason: why, latency_ms: performance.now() - t0 };
  let peak = 0;
  for (const v of x) peak = Math.max(peak, Math.abs(v));
  const scaled = peak > 1 ? x.map((v) => v / peak) : x;
  let heard = await decodePadded(scaled);
  const tempo = steadyTempo(heard.hits);
  if (tempo !== 1) heard = await decodePadded(changeTempo(scaled, CFG.sample_rate, tempo));
  const { clip, out, lead } = heard;
  let hits = heard.hits;
  if (rescorer !== null && hits.length) hits = await rescoreWords(hits, out.data, out.dims[1], clip);
  const sr = CFG.sample_rate;  // times in the recording given: the model's seconds times the tempo
  const end = (w) => Math.min(Math.max(w.frame * CFG.frame_s + CFG.word_end_s - lead / sr, 0), x.length / sr / tempo) * tempo;
  const words = hits.map((w) => ({ digit: w.digit, confidence: +w.confidence.toFixed(4), time: +end(w).toFixed(3) }));
  const digits = words.map((w) => w.digit).join("");
  return { ...base, digits, words, reason: null, tempo: +tempo.toFixed(3), latency_ms: performance.now() - t0 };
}

const recognise = STRINGS ? transcribe : classify;

async function capture(seconds) {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    throw new Error("no microphone access here: open the page on localhost or over https");
  }
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
  });
  const ctx = new AudioContext();
  try {
    await ctx.audioWorklet.addModule(URL.createObjectURL(new Blob([TAP], { type: "text/javascript" })));
    const tap = new AudioWorkletNode(ctx, "tap");
    const need = Math.round(seconds * ctx.sampleRate);
    const out = new Float32Array(need);
    let have = 0;
    await new Promise((done) => {
      tap.port.onmessage = ({ data }) => {
        out.set(data.subarray(0, need - have), have);
        have = Math.min(need, have + data.length);
        $("record").textContent = `Recording… ${(have / ctx.sampleRate).toFixed(1)} s`;
        if (have >= need) done();
      };
      ctx.createMediaStreamSource(stream).connect(tap);
      tap.connect(ctx.destination);
      ctx.resume();
    });
    return await toModelRate([out], ctx.sampleRate);
  } finally {
    stream.getTracks().forEach((t) => t.stop());
    ctx.close();
  }
}

async function run(job) {
  for (const id of ["digit", "prob", "meta", "digits", "number-meta"]) $(id).textContent = "";
  $("words").replaceChildren();
  drawBars();
  try {
    setState("working");
    const result = await job();
    window.lastResult = result;
    if (STRINGS) showNumber(result);
    else showResult(result);
    setState("done");
  } catch (e) {
    setState("error", e.message || String(e));
  } finally {
    $("record").textContent = "Record";
  }
}

$("record").addEventListener("click", () => run(async () => {
  const seconds = Math.min(CFG.max_record_s, Math.max(0.5, parseFloat($("seconds").value) || CFG.record_s));
  setState("recording");
  return recognise(await capture(seconds), "recording");
}));

$("file").addEventListener("change", () => {
  const file = $("file").files[0];
  if (file) run(async () => recognise(await decodeFile(file), file.name));
  $("file").value = "";
});

drawBars();
setState("loading");
ort.env.wasm.numThreads = 1;  // threads need cross-origin isolation headers a plain file server does not send
ort.env.wasm.wasmPaths = new URL("ort/", location.href).href;  // a bare "ort/" would be a module specifier
const opened = [ort.InferenceSession.create("model.onnx", { executionProviders: ["wasm"] })];
if (STRINGS && CFG.rescorer) opened.push(ort.InferenceSession.create("rescorer.onnx", { executionProviders: ["wasm"] }));
Promise.all(opened)
  .then(([s, r]) => { rescorer = r || null; session = s; setState("idle"); })
  .catch((e) => setState("error", `cannot load the model: ${e.message || e}`));
