// cyto explorer: WebGL scatter of the atlas with crops on hover (no network, no libraries).
// Data come from <script id="cyto-data"> (JSON, typed arrays as base64); see _explorer.py.
(function () {
  "use strict";
  const t0 = performance.now();
  const D = JSON.parse(document.getElementById("cyto-data").textContent);
  const $ = (id) => document.getElementById(id);
  // an error before the atlas is ready is shown on the page, not only in the console
  window.addEventListener("error", (e) => {
    if (document.body.dataset.ready) return;
    document.body.dataset.failed = "error";
    $("status").className = "failed";
    $("status").textContent = `The atlas could not start: ${e.message}`;
  });
  const TYPES = { u16: Uint16Array, u32: Uint32Array, f32: Float32Array, u8: Uint8Array };

  function decode(b64, Type) {
    const bin = atob(b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return new Type(bytes.buffer);
  }
  const typed = (x) => decode(x.data, TYPES[x.dtype]);
  function hexRGB(h) {
    return [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16));
  }

  // ------------------------------------------------------------------ data
  const N = D.n;
  const P = D.proteins.length;
  const cropXY = decode(D.xy, Uint16Array);
  const protXY = decode(D.protein_xy, Uint16Array);
  const cropProt = typed(D.protein);
  const spanX = D.bounds[1] - D.bounds[0] || 1;
  const spanY = D.bounds[3] - D.bounds[2] || 1;
  const aspect = [spanX / Math.max(spanX, spanY), spanY / Math.max(spanX, spanY)];
  const colorings = D.colorings.map((c) => ({ ...c, idx: typed(c.index) }));
  const protIndex = new Map(D.proteins.map((p, i) => [p, i]));
  // points of every protein (CSR)
  const protStart = new Int32Array(P + 1);
  for (let i = 0; i < N; i++) protStart[cropProt[i] + 1]++;
  for (let p = 0; p < P; p++) protStart[p + 1] += protStart[p];
  const protPoints = new Int32Array(N);
  {
    const fill = protStart.slice(0, P);
    for (let i = 0; i < N; i++) protPoints[fill[cropProt[i]]++] = i;
  }
  // thumbnails: point -> thumbnail, and sprite sheets
  const thumbOf = new Int32Array(N).fill(-1);
  const sheets = [];
  if (D.thumbs) {
    const pts = decode(D.thumbs.points, Uint32Array);
    for (let k = 0; k < pts.length; k++) thumbOf[pts[k]] = k;
    for (const s of D.thumbs.sheets) {
      const img = new Image();
      img.src = `data:${D.thumbs.mime};base64,` + s;
      sheets.push(img);
    }
  }
  const spectra = D.spectra ? decode(D.spectra.values, Float32Array) : null;
  const spectrumRow = new Map(D.spectra ? D.spectra.proteins.map((p, i) => [p, i]) : []);

  // ------------------------------------------------------------------ WebGL
  const canvas = $("gl");
  const gl = canvas.getContext("webgl", { antialias: false, preserveDrawingBuffer: true });
  if (!gl) {
    // say why instead of an empty canvas and "loading..." forever
    document.body.dataset.failed = "webgl";
    $("status").className = "failed";
    $("status").textContent =
      "The atlas cannot be drawn: this browser has WebGL turned off, or no graphics " +
      "driver for it. Open this file in a current Chrome, Firefox or Safari with hardware " +
      "acceleration (WebGL) enabled; it needs no network.";
    return;
  }
  const VS = `
    attribute vec2 a_pos; attribute vec3 a_col;
    uniform vec2 u_aspect, u_canvas, u_pan; uniform float u_scale, u_size;
    varying vec3 v_col;
    void main() {
      vec2 w = (a_pos - 0.5) * u_aspect;
      vec2 px = vec2(0.5 * u_canvas.x + w.x * u_scale + u_pan.x,
                     0.5 * u_canvas.y - w.y * u_scale + u_pan.y);
      gl_Position = vec4(px.x / u_canvas.x * 2.0 - 1.0, 1.0 - px.y / u_canvas.y * 2.0, 0.0, 1.0);
      gl_PointSize = u_size; v_col = a_col;
    }`;
  const FS = `
    precision mediump float; varying vec3 v_col; uniform float u_alpha;
    void main() {
      vec2 d = gl_PointCoord - 0.5;
      if (dot(d, d) > 0.25) discard;
      gl_FragColor = vec4(v_col * u_alpha, u_alpha);
    }`;
  function shader(type, src) {
    const s = gl.createShader(type);
    gl.shaderSource(s, src);
    gl.compileShader(s);
    if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(s));
    return s;
  }
  const prog = gl.createProgram();
  gl.attachShader(prog, shader(gl.VERTEX_SHADER, VS));
  gl.attachShader(prog, shader(gl.FRAGMENT_SHADER, FS));
  gl.linkProgram(prog);
  gl.useProgram(prog);
  const loc = {};
  for (const u of ["u_aspect", "u_canvas", "u_pan", "u_scale", "u_size", "u_alpha"])
    loc[u] = gl.getUniformLocation(prog, u);
  const aPos = gl.getAttribLocation(prog, "a_pos");
  const aCol = gl.getAttribLocation(prog, "a_col");
  gl.enable(gl.BLEND);
  gl.blendFunc(gl.ONE, gl.ONE_MINUS_SRC_ALPHA);
  const buf = { pos: gl.createBuffer(), col: gl.createBuffer(), selPos: gl.createBuffer() };

  // ------------------------------------------------------------------ state
  const S = { view: "crops", coloring: 0, zoom: 1, pan: [0, 0], selected: -1, hover: -1, nSel: 0 };
  const pointsXY = () => (S.view === "crops" ? cropXY : protXY);
  const nPoints = () => (S.view === "crops" ? N : P);
  function uploadPositions() {
    gl.bindBuffer(gl.ARRAY_BUFFER, buf.pos);
    gl.bufferData(gl.ARRAY_BUFFER, pointsXY(), gl.STATIC_DRAW);
    buildGrid();
  }
  function pointColors() {
    const n = nPoints();
    const rgb = new Uint8Array(n * 3);
    const grey = hexRGB(D.unlabelled_color);
    const c = colorings[S.coloring];
    const pal = c ? c.colors.map(hexRGB) : [];
    for (let i = 0; i < n; i++) {
      let col = grey;
      if (c) {
        const j = S.view === "crops" ? c.idx[i] : proteinLabel(c, i);
        if (j !== c.missing && j >= 0) col = pal[j];
      }
      rgb[3 * i] = col[0];
      rgb[3 * i + 1] = col[1];
      rgb[3 * i + 2] = col[2];
    }
    return rgb;
  }
  function proteinLabel(c, p) {
    // the most common label among the protein's crops (cached per colouring)
    if (!c.perProtein) {
      c.perProtein = new Int32Array(P).fill(-1);
      for (let q = 0; q < P; q++) {
        const counts = new Map();
        let best = -1, bestN = 0;
        for (let k = protStart[q]; k < protStart[q + 1]; k++) {
          const j = c.idx[protPoints[k]];
          if (j === c.missing) continue;
          const m = (counts.get(j) || 0) + 1;
          counts.set(j, m);
          if (m > bestN) { best = j; bestN = m; }
        }
        c.perProtein[q] = best;
      }
    }
    return c.perProtein[p];
  }
  function uploadColors() {
    gl.bindBuffer(gl.ARRAY_BUFFER, buf.col);
    gl.bufferData(gl.ARRAY_BUFFER, pointColors(), gl.STATIC_DRAW);
    drawLegend();
  }
  let cssW = 1, cssH = 1, dpr = 1;
  function resize() {
    dpr = window.devicePixelRatio || 1;
    cssW = Math.max(1, canvas.clientWidth);
    cssH = Math.max(1, canvas.clientHeight);
    canvas.width = Math.round(cssW * dpr);
    canvas.height = Math.round(cssH * dpr);
    gl.viewport(0, 0, canvas.width, canvas.height);
  }
  const scale = () => 0.92 * Math.min(cssW, cssH) * S.zoom;
  function pointSize() {
    const base = S.view === "crops" ? 350 / Math.sqrt(Math.max(nPoints(), 1)) : 9;
    return Math.min(12, Math.max(1.5, Math.min(base, 8) * Math.sqrt(S.zoom)));
  }
  function setCommon() {
    gl.uniform2f(loc.u_aspect, aspect[0], aspect[1]);
    gl.uniform2f(loc.u_canvas, cssW, cssH);
    gl.uniform2f(loc.u_pan, S.pan[0], S.pan[1]);
    gl.uniform1f(loc.u_scale, scale());
  }
  // Level of detail: while the view moves, draw only the first `budget` points (the
  // points are in random order, so that is a uniform sample) to keep frames under
  // ~40 ms; every point is drawn again once the view rests.
  const LOD = { budget: Infinity, fullMs: 0, timer: 0 };
  function measureFull() {
    const px = new Uint8Array(4);
    const t = performance.now();
    draw(true);
    gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, px); // wait for the frame
    LOD.fullMs = performance.now() - t;
    const n = nPoints();
    LOD.budget = LOD.fullMs > 40 ? Math.max(10000, Math.floor((n * 40) / LOD.fullMs)) : Infinity;
  }
  function draw(full = true) {
    S.drawn = full ? nPoints() : Math.min(nPoints(), LOD.budget);
    gl.clearColor(1, 1, 1, 1);
    gl.clear(gl.COLOR_BUFFER_BIT);
    setCommon();
    const size = pointSize();
    gl.bindBuffer(gl.ARRAY_BUFFER, buf.pos);
    gl.enableVertexAttribArray(aPos);
    gl.vertexAttribPointer(aPos, 2, gl.UNSIGNED_SHORT, true, 0, 0);
    gl.bindBuffer(gl.ARRAY_BUFFER, buf.col);
    gl.enableVertexAttribArray(aCol);
    gl.vertexAttribPointer(aCol, 3, gl.UNSIGNED_BYTE, true, 0, 0);
    gl.uniform1f(loc.u_size, size * dpr);
    gl.uniform1f(loc.u_alpha, S.selected >= 0 ? 0.35 : 0.85);
    gl.drawArrays(gl.POINTS, 0, S.drawn);
    if (S.selected >= 0 && S.nSel > 0) {
      // the selected protein's points: black ring, white fill, on top
      gl.bindBuffer(gl.ARRAY_BUFFER, buf.selPos);
      gl.vertexAttribPointer(aPos, 2, gl.UNSIGNED_SHORT, true, 0, 0);
      gl.disableVertexAttribArray(aCol);
      const big = Math.max(size * 1.8, 7);
      gl.uniform1f(loc.u_alpha, 1.0);
      gl.vertexAttrib3f(aCol, 0.05, 0.05, 0.05);
      gl.uniform1f(loc.u_size, (big + 3) * dpr);
      gl.drawArrays(gl.POINTS, 0, S.nSel);
      gl.vertexAttrib3f(aCol, 1.0, 0.18, 0.33);
      gl.uniform1f(loc.u_size, big * dpr);
      gl.drawArrays(gl.POINTS, 0, S.nSel);
    }
  }
  let pending = false;
  function redraw(moving = false) {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      draw(!moving);
      clearTimeout(LOD.timer);
      if (moving && S.drawn < nPoints()) LOD.timer = setTimeout(() => draw(true), 200);
    });
  }

  // ------------------------------------------------------------------ picking
  let grid = null;
  function buildGrid() {
    const xy = pointsXY(), n = nPoints();
    const G = Math.max(1, Math.min(1024, Math.ceil(Math.sqrt(n / 4))));
    const cell = new Int32Array(n);
    const start = new Int32Array(G * G + 1);
    for (let i = 0; i < n; i++) {
      const cx = Math.min(G - 1, (xy[2 * i] * G / 65536) | 0);
      const cy = Math.min(G - 1, (xy[2 * i + 1] * G / 65536) | 0);
      cell[i] = cy * G + cx;
      start[cell[i] + 1]++;
    }
    for (let c = 0; c < G * G; c++) start[c + 1] += start[c];
    const items = new Int32Array(n);
    const fill = start.slice(0, G * G);
    for (let i = 0; i < n; i++) items[fill[cell[i]]++] = i;
    grid = { G, start, items };
  }
  function toScreen(u, v) {
    const s = scale();
    return [0.5 * cssW + (u - 0.5) * aspect[0] * s + S.pan[0],
            0.5 * cssH - (v - 0.5) * aspect[1] * s + S.pan[1]];
  }
  function screenOfPoint(i) {
    const xy = pointsXY();
    return toScreen(xy[2 * i] / 65535, xy[2 * i + 1] / 65535);
  }
  function pick(px, py, radius) {
    const s = scale();
    const u = (px - 0.5 * cssW - S.pan[0]) / (aspect[0] * s) + 0.5;
    const v = -(py - 0.5 * cssH - S.pan[1]) / (aspect[1] * s) + 0.5;
    const { G, start, items } = grid;
    const ru = radius / (aspect[0] * s), rv = radius / (aspect[1] * s);
    const x0 = Math.max(0, Math.floor((u - ru) * G)), x1 = Math.min(G - 1, Math.floor((u + ru) * G));
    const y0 = Math.max(0, Math.floor((v - rv) * G)), y1 = Math.min(G - 1, Math.floor((v + rv) * G));
    if (x1 < x0 || y1 < y0 || (x1 - x0 + 1) * (y1 - y0 + 1) > 4096) return -1;
    let best = -1, bestD = radius * radius;
    const xy = pointsXY();
    for (let cy = y0; cy <= y1; cy++)
      for (let cx = x0; cx <= x1; cx++)
        for (let k = start[cy * G + cx]; k < start[cy * G + cx + 1]; k++) {
          const i = items[k];
          const q = toScreen(xy[2 * i] / 65535, xy[2 * i + 1] / 65535);
          const d = (q[0] - px) ** 2 + (q[1] - py) ** 2;
          if (d <= bestD) { bestD = d; best = i; }
        }
    return best;
  }

  // ------------------------------------------------------------------ thumbnails
  function drawThumb(ctx, k, x, y, w) {
    const t = D.thumbs, per = t.cols * t.cols;
    const sheet = sheets[Math.floor(k / per)];
    const j = k % per;
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(sheet, (j % t.cols) * t.size, Math.floor(j / t.cols) * t.size, t.size, t.size,
                  x, y, w, w);
  }
  function thumbsOfProtein(p) {
    const out = [];
    for (let k = protStart[p]; k < protStart[p + 1]; k++)
      if (thumbOf[protPoints[k]] >= 0) out.push(thumbOf[protPoints[k]]);
    return out;
  }
  function labelOf(c, point) {
    const j = S.view === "crops" ? c.idx[point] : proteinLabel(c, point);
    return j === c.missing || j < 0 ? "unlabelled" : c.labels[j];
  }
  function showTip(i, px, py) {
    const tip = $("tip");
    if (i < 0) { tip.hidden = true; return; }
    const p = S.view === "crops" ? cropProt[i] : i;
    const k = S.view === "crops" ? thumbOf[i] : (thumbsOfProtein(p)[0] ?? -1);
    const ctx = $("tipimg").getContext("2d");
    const img = $("tipimg");
    img.hidden = k < 0;
    if (k >= 0) {
      img.width = img.height = D.thumbs.size;
      drawThumb(ctx, k, 0, 0, D.thumbs.size);
    }
    const lines = [`<b>${esc(D.proteins[p])}</b>`];
    const info = D.protein_info[D.proteins[p]] || {};
    for (const c of colorings) {
      const label = labelOf(c, i);
      const why = label === "unlabelled" && info[c.name] ? info[c.name] : label;
      lines.push(`${esc(c.name)}: ${esc(why)}`);
    }
    if (S.view === "proteins") lines.push(`${protStart[p + 1] - protStart[p]} crops`);
    if (k < 0 && D.thumbs)
      lines.push(`<i>no thumbnail: ${D.thumbs.count} of ${N} crops have one</i>`);
    $("tiptext").innerHTML = lines.join("<br>");
    tip.hidden = false;
    tip.dataset.point = String(i);
    tip.dataset.thumb = String(k);
    const x = px + 16 + 200 > cssW ? px - 16 - tip.offsetWidth : px + 16;
    const y = Math.min(py + 16, cssH - tip.offsetHeight - 4);
    tip.style.left = `${Math.max(0, x)}px`;
    tip.style.top = `${Math.max(0, y)}px`;
  }
  function esc(s) {
    return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  }

  // ------------------------------------------------------------------ selection
  function selectProtein(name) {
    const p = protIndex.get(name);
    if (p === undefined) return false;
    S.selected = p;
    const n = protStart[p + 1] - protStart[p];
    const sel = new Uint16Array(S.view === "crops" ? 2 * n : 2);
    if (S.view === "crops") {
      for (let k = 0; k < n; k++) {
        const i = protPoints[protStart[p] + k];
        sel[2 * k] = cropXY[2 * i];
        sel[2 * k + 1] = cropXY[2 * i + 1];
      }
    } else {
      sel[0] = protXY[2 * p];
      sel[1] = protXY[2 * p + 1];
    }
    S.nSel = sel.length / 2;
    gl.bindBuffer(gl.ARRAY_BUFFER, buf.selPos);
    gl.bufferData(gl.ARRAY_BUFFER, sel, gl.STATIC_DRAW);
    showProtein(p);
    redraw();
    return true;
  }
  function showProtein(p) {
    const name = D.proteins[p];
    $("protein-panel").hidden = false;
    $("p-name").textContent = name;
    const info = [`${protStart[p + 1] - protStart[p]} crops in the atlas`];
    for (const [k, v] of Object.entries(D.protein_info[name] || {})) info.push(`${k}: ${v}`);
    $("p-info").innerHTML = info.map(esc).join("<br>");
    drawSpectrum(name);
    const tb = $("p-neighbours");
    tb.innerHTML = "";
    for (const [q, d] of D.neighbours[name] || []) {
      const tr = tb.insertRow();
      const a = document.createElement("a");
      a.textContent = q;
      a.onclick = () => selectProtein(q);
      tr.insertCell().appendChild(a);
      tr.insertCell().textContent = d.toFixed(3);
      const info = D.protein_info[q] || {};
      tr.insertCell().textContent = Object.values(info)[0] || "";
    }
    if (!tb.rows.length) tb.insertRow().insertCell().textContent = "not computed";
    const crops = $("p-crops");
    crops.innerHTML = "";
    const ks = thumbsOfProtein(p).slice(0, 24);
    for (const k of ks) {
      const c = document.createElement("canvas");
      c.width = c.height = D.thumbs.size;
      drawThumb(c.getContext("2d"), k, 0, 0, D.thumbs.size);
      crops.appendChild(c);
    }
    if (!ks.length) crops.textContent = "no thumbnails of this protein";
  }
  function drawSpectrum(name) {
    const cv = $("p-spectrum"), ctx = cv.getContext("2d");
    ctx.clearRect(0, 0, cv.width, cv.height);
    const row = spectrumRow.get(name);
    const note = $("p-spectrum-note");
    cv.dataset.drawn = "0";
    if (row === undefined) { note.textContent = "no spectrum for this protein"; return; }
    const k = D.spectra.k, vals = spectra.subarray(row * k, row * k + k);
    let max = 0;
    for (const v of vals) max = Math.max(max, v);
    const w = cv.width / k, h = cv.height - 14;
    const cols = D.spectra.cluster_colors;
    for (let j = 0; j < k; j++) {
      const cl = D.spectra.clusters[j];
      ctx.fillStyle = cl >= 0 && cols[cl] ? cols[cl] : "#555";
      const bh = max > 0 ? (vals[j] / max) * h : 0;
      ctx.fillRect(j * w, h - bh, Math.max(w, 1), bh);
    }
    ctx.fillStyle = "#333";
    ctx.fillRect(0, h, cv.width, 1);
    ctx.font = "10px system-ui";
    ctx.fillText(`${k} codes (feature-cluster order)`, 2, cv.height - 2);
    note.textContent = `bar height: mean uses of the code per crop (tallest ${max.toFixed(2)})`;
    cv.dataset.drawn = "1";
  }

  // ------------------------------------------------------------------ legend, controls
  function drawLegend() {
    const el = $("legend"), c = colorings[S.coloring];
    el.innerHTML = "";
    if (!c) return;
    const order = c.labels.map((_, j) => j).sort((a, b) => c.counts[b] - c.counts[a]);
    const shown = order.slice(0, 80);
    const rows = shown.map((j) =>
      `<div class="lg"><span class="sw" style="background:${c.colors[j]}"></span>` +
      `${esc(c.labels[j])} <span style="color:#888">(${c.counts[j]})</span></div>`);
    if (order.length > shown.length) rows.push(`<div>… ${order.length - shown.length} more</div>`);
    if (c.unlabelled)
      rows.push(`<div class="lg"><span class="sw" style="background:${D.unlabelled_color}"></span>` +
                `unlabelled or left out <span style="color:#888">(${c.unlabelled})</span></div>`);
    el.innerHTML = rows.join("");
  }
  function search() {
    $("tip").hidden = true;
    const q = $("search").value.trim();
    if (!q) return;
    let name = protIndex.has(q) ? q : null;
    if (!name) {
      const lq = q.toLowerCase();
      name = D.proteins.find((p) => p.toLowerCase() === lq) ||
             D.proteins.find((p) => p.toLowerCase().startsWith(lq)) || null;
    }
    $("search-msg").textContent = name ? "" : `no protein named "${q}"`;
    if (name) {
      selectProtein(name);
      const p = protIndex.get(name);
      const [x, y] = toScreen(protXY[2 * p] / 65535, protXY[2 * p + 1] / 65535);
      S.pan = [S.pan[0] + 0.5 * cssW - x, S.pan[1] + 0.5 * cssH - y];
      redraw();
    }
  }
  function setupControls() {
    const sel = $("color-by");
    colorings.forEach((c, j) => sel.add(new Option(c.name, String(j))));
    if (!colorings.length) sel.add(new Option("nothing (no labels)", "-1"));
    sel.onchange = () => { S.coloring = Number(sel.value); uploadColors(); redraw(); };
    $("view").onchange = () => {
      S.view = $("view").value;
      uploadPositions();
      uploadColors();
      if (S.selected >= 0) selectProtein(D.proteins[S.selected]);
      measureFull();
    };
    $("reset").onclick = () => { S.zoom = 1; S.pan = [0, 0]; redraw(); };
    const list = $("protein-list");
    for (const p of D.proteins.slice(0, 20000)) list.appendChild(new Option(p));
    $("search").addEventListener("keydown", (e) => { if (e.key === "Enter") search(); });
    $("search").addEventListener("change", search);
    $("notes").innerHTML = D.notes.map((t) => `<p>${esc(t)}</p>`).join("");
  }
  function setupMouse() {
    let drag = null;
    canvas.addEventListener("mousedown", (e) => {
      drag = { x: e.offsetX, y: e.offsetY, pan: S.pan.slice(), moved: false };
    });
    window.addEventListener("mouseup", (e) => {
      if (drag && !drag.moved && e.target === canvas) {
        const i = pick(e.offsetX, e.offsetY, 8);
        if (i >= 0) selectProtein(D.proteins[S.view === "crops" ? cropProt[i] : i]);
      }
      drag = null;
    });
    canvas.addEventListener("mousemove", (e) => {
      if (drag) {
        const dx = e.offsetX - drag.x, dy = e.offsetY - drag.y;
        if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
        S.pan = [drag.pan[0] + dx, drag.pan[1] + dy];
        $("tip").hidden = true;
        redraw(true);
        return;
      }
      S.hover = pick(e.offsetX, e.offsetY, 8);
      showTip(S.hover, e.offsetX, e.offsetY);
    });
    canvas.addEventListener("mouseleave", () => { $("tip").hidden = true; });
    canvas.addEventListener("wheel", (e) => {
      e.preventDefault();
      const f = Math.exp(-e.deltaY * 0.0015);
      const z = Math.min(2000, Math.max(0.5, S.zoom * f));
      const g = z / S.zoom;
      // keep the point under the cursor in place
      S.pan = [(S.pan[0] - (e.offsetX - 0.5 * cssW)) * g + (e.offsetX - 0.5 * cssW),
               (S.pan[1] - (e.offsetY - 0.5 * cssH)) * g + (e.offsetY - 0.5 * cssH)];
      S.zoom = z;
      redraw(true);
    }, { passive: false });
    window.addEventListener("resize", () => { resize(); measureFull(); });
  }

  // ------------------------------------------------------------------ start
  async function start() {
    await Promise.all(sheets.map((img) => img.decode()));
    resize();
    setupControls();
    uploadPositions();
    uploadColors();
    setupMouse();
    measureFull();
    const thumbs = D.thumbs ? `${D.thumbs.count} of ${N} crops have a thumbnail` : "no thumbnails";
    $("status").textContent = `${N} crops · ${P} proteins · ${thumbs}`;
    api.loadMs = performance.now() - t0;
    api.ready = true;
    document.body.dataset.ready = "1";
  }
  // for tests and benchmarks (headless browser)
  const api = {
    ready: false,
    n: N,
    selectProtein,
    screenOfPoint,
    thumbPoint: (k) => Array.from(thumbOf).indexOf(k),
    hasThumb: (i) => thumbOf[i] >= 0,
    proteinOfPoint: (i) => D.proteins[cropProt[i]],
    state: () => ({ ...S }),
    benchmark(frames, moving = false) {
      // draw `frames` frames at changing zoom, every point (or, `moving`, the
      // level-of-detail sample drawn while the view moves); wait for each (readPixels)
      const px = new Uint8Array(4);
      const z0 = S.zoom;
      const t = performance.now();
      for (let f = 0; f < frames; f++) {
        S.zoom = z0 * (1 + 0.5 * Math.sin(f / 5));
        draw(!moving);
        gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, px);
      }
      const drawn = S.drawn;
      S.zoom = z0;
      draw(true);
      return { ms: (performance.now() - t) / frames, points: drawn };
    },
  };
  window.cytoExplorer = api;
  start().catch((err) => {
    $("status").textContent = `failed to start: ${err}`;
    throw err;
  });
})();
