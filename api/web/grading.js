// The grading dashboard: ranking with stars and awards, the policy, and per city a radar chart
// (drawn by the server, the same SVG as in the report) and every indicator with its evidence.
"use strict";

const TEXT = {
  zh: {
    title: "新型智慧城市星级评价", round: "评价轮次", reportPdf: "报告 PDF", viewer: "三维城市",
    ranking: "排名与奖补", rank: "排名", not_assessed: "未评", city: "城市", stars: "星级", subtype: "类型", score: "总分",
    amount: "奖补（元）", allocation: "奖补政策与分配", area: "领域", points: "得分", weight: "权重",
    indicator: "指标", value: "数值", level: "等级", reason: "依据", evidence: "来源与佐证",
    policy: "政策", eligibility: "申报条件", fromStars: "星级及以上", cap: "单市上限", budget: "总预算",
    method: "分配方式", perStar: "按星级定额", perPoint: "按分值（每分）", stepUp: "升星奖励",
    merit: "择优排序", allocated: "已分配", left: "结余", computed: "模型计算", query: "查询与参数",
    download: "下载", status: { draft: "草稿", submitted: "已提交", reviewed: "已复核", final: "已定稿" },
    provisional: "注意：当前指标体系或奖补政策含暂定数值，须由评审委员会确认。",
    noRounds: "尚无评价轮次：用 cim grade round create 创建。", yes: "是", no: "否", total: "合计",
    missing: "缺少数值", needKey: "此服务的评价数据需要 API 密钥", keyLabel: "API 密钥", keyGo: "确定",
    previous: "较上一轮", newCity: "新参评", otherCatalogue: "上一轮采用另一指标体系：各领域比较得分率（%）的变化。", change: "变化", functions: "平台功能组",
    lacking: "缺少",
  },
  en: {
    title: "Smart-city star rating", round: "Round", reportPdf: "Report PDF", viewer: "3D city",
    ranking: "Ranking and awards", rank: "Rank", not_assessed: "not assessed", city: "City", stars: "Stars", subtype: "Type",
    score: "Score (with bonus)", amount: "Award (CNY)", allocation: "Award policy and allocation", area: "Area",
    points: "Points", weight: "Weight", indicator: "Indicator", value: "Value", level: "Level",
    reason: "Reason", evidence: "Source and evidence", policy: "Policy", eligibility: "Eligibility",
    fromStars: "stars or more", cap: "Cap per city", budget: "Budget", method: "Method",
    perStar: "fixed amount per star level", perPoint: "per point", stepUp: "Step-up reward",
    merit: "Merit order", allocated: "Allocated", left: "Left", computed: "from the model",
    query: "query and parameters", download: "download",
    status: { draft: "draft", submitted: "submitted", reviewed: "reviewed", final: "final" },
    provisional: "Note: the catalogue or award policy has provisional numbers; the committee must confirm them.",
    noRounds: "No rounds yet: create one with cim grade round create.", yes: "yes", no: "no",
    total: "Total", missing: "values missing", needKey: "This service's grading data needs an API key",
    keyLabel: "API key", keyGo: "OK",
    previous: "vs previous round", newCity: "new", otherCatalogue: "The previous round used another catalogue: areas compare by their share of points (%).", change: "Change", functions: "platform function groups",
    lacking: "missing",
  },
};
const SUBTYPE_EN = { "基础型": "basic", "成长型": "growth" };
// in Chinese, units and the ids inside the results' reasons are said as the report says them
// (grading/report.py UNITS_ZH, zh_reason)
const UNITS_ZH = { "/km²": "个/平方公里", "km²": "平方公里", km: "公里", m: "米", count: "个", grade: "等级", score: "分", points: "分", CNY: "元" };

let lang = localStorage.getItem("cim.lang") || "zh";
let results = null;
let selected = null;
let compared = null;  // city code -> its comparison with the previous round, when one is linked
let comparedSameCatalogue = true;

function t(key) { return (TEXT[lang] || TEXT.zh)[key] ?? key; }
function nameOf(x) { return lang === "zh" ? x.name_zh : x.name_en; }
function money(v) { return Math.round(v).toLocaleString("en-US"); }
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c ?? "")));
  return node;
}
function unitText(unit) { return lang === "zh" ? UNITS_ZH[unit] ?? unit : unit; }
function zhNames() {
  return Object.fromEntries([...results.catalogue.areas, ...results.catalogue.indicators].map((x) => [x.id, x.name_zh]));
}
function reasonText(zh, en, unit = "") {
  if (lang !== "zh" || !zh) return en;
  const names = zhNames();
  let text = zh;
  if (unit && unit in UNITS_ZH) {
    const escaped = unit.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    text = text.replace(new RegExp(`(?<=\\d) ${escaped}(?=[ ：;；)）]|$)`, "g"), UNITS_ZH[unit] ? ` ${UNITS_ZH[unit]}` : "");
  }
  return text.replace(/(?<![\w.])[A-Za-z][\w.]*\w(?![\w.])/g, (id) => names[id] ?? id);
}
// the standard's code alone (DB37/T 3890.1-2020), and one language of a bilingual title
// ("山东… / Shandong…"), in Chinese, as the report prints them
function standardText(standard) {
  const code = standard.match(/^[A-Z]+\d*(?:\/[A-Z])? [\d.]+(?:-\d{4})?/);
  return lang === "zh" && code ? code[0] : standard;
}
function titleIn(title) {
  const parts = title.split(" / ").map((p) => p.trim());
  const chinese = parts.filter((p) => /[\u4e00-\u9fff]/.test(p));
  if (parts.length !== 2 || chinese.length !== 1) return title;
  return lang === "zh" ? chinese[0] : parts.find((p) => p !== chinese[0]);
}
function valueText(v) {
  if (v === null || v === undefined) return "—";
  if (typeof v === "boolean") return v ? t("yes") : t("no");
  if (typeof v === "number") return v.toLocaleString("en-US", { maximumFractionDigits: 4 });  // never rounded up to a threshold
  return String(v);
}
// When the service keeps grading private (CIM_API_GRADING_PRIVATE), reads need a key too: the
// page asks for one and keeps it for this browser tab only.
function keyHeaders() {
  const key = sessionStorage.getItem("cim.key");
  return key ? { "X-API-Key": key } : {};
}
async function getResponse(url) {
  const r = await fetch(url, { headers: { Accept: "application/json", ...keyHeaders() } });
  if (r.status === 401) { askForKey(); throw new Error(t("needKey")); }
  if (!r.ok) throw new Error(`${url}: ${r.status} ${(await r.json().catch(() => ({}))).detail || ""}`);
  return r;
}
async function getJSON(url) { return (await getResponse(url)).json(); }
function askForKey() {
  document.getElementById("key-form").hidden = false;
}
// links to files (evidence, PDF) carry the key only through fetch: open them as blobs
async function openFile(event) {
  if (!sessionStorage.getItem("cim.key")) return;  // public: the plain link works
  event.preventDefault();
  const blob = await (await getResponse(event.currentTarget.href)).blob();
  window.open(URL.createObjectURL(blob), "_blank");
}

function applyLanguage() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  document.title = `CIM ${t("title")}`;
  document.querySelectorAll("[data-i18n]").forEach((n) => { n.textContent = t(n.dataset.i18n); });
  document.getElementById("lang").textContent = lang === "zh" ? "EN" : "中文";
}

// whether the results rest on provisional numbers (catalogue or policy): marked on every row
function provisional() {
  return results.catalogue.star_rule_provisional
    || results.catalogue.areas.some((a) => a.provisional)
    || results.catalogue.indicators.some((i) => i.provisional)
    || results.policy.provenance.status === "provisional"
    || (results.policy.placeholders || []).length > 0;
}

// one column per area of the catalogue, with each city's subtotal (as in the report's summary)
function renderAreaHeads() {
  const head = document.querySelector("#ranking thead tr");
  head.querySelectorAll("th.area").forEach((th) => th.remove());
  const before = head.querySelector("th[data-i18n=score]");
  for (const a of results.catalogue.areas) {
    const most = a.bonus && a.cap != null ? a.cap : a.weight;
    before.before(el("th", { class: "n area", "data-area": a.id, title: `${nameOf(a)}: ${t("points")} / ${most}` },
      nameOf(a), el("br"), el("span", { class: "small" }, most)));
  }
}

function areaCells(c) {
  const subtotal = Object.fromEntries(c.areas.map((a) => [a.id, a.points]));
  return results.catalogue.areas.map((a) => el("td", { class: "n area", "data-area": a.id },
    c.not_assessed || subtotal[a.id] == null ? "—" : subtotal[a.id].toFixed(2)));
}

// the change since the previous round: places (↑ up, ↓ down) and points
function previousCell(c) {
  const x = compared?.[c.code];
  if (!x) return el("td", { class: "n small" }, "");
  if (!x.before) return el("td", { class: "n small" }, t("newCity"));
  if (x.before.not_assessed || x.now?.not_assessed) return el("td", { class: "n small" }, t("not_assessed"));
  const moved = x.rank_change == null || x.rank_change === 0 ? "＝" : x.rank_change > 0 ? `↑${x.rank_change}` : `↓${-x.rank_change}`;
  const points = x.score_change == null ? "" : ` ${x.score_change >= 0 ? "+" : ""}${x.score_change.toFixed(2)}`;
  return el("td", { class: "n small", title: `${x.before.rank ?? t("not_assessed")} → ${x.now?.rank ?? t("not_assessed")}` }, moved + points);
}

function renderRanking() {
  renderAreaHeads();
  const head = document.querySelector("#ranking thead tr");
  head.querySelectorAll("th.previous").forEach((th) => th.remove());
  if (compared) head.append(el("th", { class: "n previous" }, t("previous")));
  const typed = results.cities.some((c) => c.subtype);  // the type column only where a city has one
  document.querySelector("#ranking th[data-i18n=subtype]").hidden = !typed;
  const body = document.querySelector("#ranking tbody");
  body.replaceChildren();
  for (const c of results.cities) {
    const row = el("tr", { "data-code": c.code, title: lang === "zh" ? c.award_reason_zh : c.award_reason },
      el("td", { class: "n" }, c.rank ?? t("not_assessed")),
      el("td", { class: "city" }, `${nameOf(c)} `, el("span", { class: "small" }, c.code)),
      el("td", { class: c.stars ? "stars" : "zero", title: provisional() ? t("provisional") : "" },
        (c.stars ? "★".repeat(c.stars) : "—") + (provisional() ? " *" : "")),
      ...(typed ? [el("td", {}, c.subtype ? (lang === "zh" ? c.subtype : SUBTYPE_EN[c.subtype] || c.subtype) : "")] : []),
      ...areaCells(c),
      el("td", { class: "n" }, c.not_assessed ? "—" : c.score.toFixed(2)),
      el("td", { class: "n" }, money(c.amount)),
      ...(compared ? [previousCell(c)] : []));
    if (c.code === selected) row.classList.add("selected");
    row.addEventListener("click", () => showCity(c.code));
    body.append(row);
  }
}

function renderPolicy() {
  const p = results.policy;
  const a = results.allocation;
  const amounts = p.method === "per_star"
    ? `${t("perStar")}: ` + Object.entries(p.amounts).map(([s, v]) => `${s}★ ${money(v)}`).join(", ")
    : `${t("perPoint")}: ${money(p.per_point)}`;
  const rows = [
    [t("policy"), `${titleIn(p.title)} (${p.id})`],
    [t("eligibility"), `${p.min_stars} ${t("fromStars")}`],
    [t("cap"), money(p.cap_per_city)],
    [t("budget"), money(p.budget)],
    [t("method"), amounts],
    ...(p.step_up ? [[t("stepUp"), money(p.step_up)]] : []),
    [t("merit"), lang === "zh" ? results.merit_rule_zh : results.merit_rule],
    [`${t("allocated")} / ${t("left")}`, `${money(a.allocated)} / ${money(a.left)}`],
  ];
  const dl = document.getElementById("policy");
  dl.replaceChildren(...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
}

async function showCity(code) {
  selected = code;
  renderRanking();
  const c = results.cities.find((x) => x.code === code);
  const roundId = document.getElementById("round").value;
  document.getElementById("detail").hidden = false;
  document.getElementById("detail-title").textContent =
    `${nameOf(c)} (${c.code}) — ${c.rank == null ? t("not_assessed") : `${t("rank")} ${c.rank}`}, ${c.stars ? "★".repeat(c.stars) : "—"}`;
  const svg = await fetch(`/grading/rounds/${encodeURIComponent(roundId)}/cities/${encodeURIComponent(code)}/radar.svg?lang=${lang}`,
    { headers: keyHeaders() });
  const drawing = svg.ok ? await svg.text() : "";
  if (selected !== code) return;  // another city was chosen meanwhile
  const radar = document.getElementById("radar");
  radar.innerHTML = drawing;  // SVG made by this service from the round's own data
  radar.dataset.code = code;
  const areas = Object.fromEntries(results.catalogue.areas.map((a) => [a.id, a]));
  const byShare = compared && !comparedSameCatalogue;  // other weights: shares compare, points do not
  const then = Object.fromEntries((compared?.[code]?.areas || []).map((a) => [a.id, byShare ? a.share_change : a.change]));
  const signed = (v) => (v == null ? "—" : `${v >= 0 ? "+" : ""}${v.toFixed(2)}`);
  const areaHead = document.querySelector("#areas thead tr");
  areaHead.querySelectorAll("th.previous").forEach((th) => th.remove());
  if (compared) areaHead.append(el("th", { class: "n previous" }, t("previous") + (byShare ? " (%)" : "")));
  document.querySelector("#areas tbody").replaceChildren(
    ...c.areas.map((a) => el("tr", {}, el("td", {}, nameOf(areas[a.id])),
      el("td", { class: "n" }, a.points.toFixed(2)), el("td", { class: "n" }, a.weight),
      ...(compared ? [el("td", { class: "n", "data-area": a.id }, signed(then[a.id]))] : []))),
    el("tr", {}, el("th", {}, t("total")), el("th", { class: "n" }, c.score.toFixed(2)), el("th"),
      ...(compared ? [el("th", { class: "n" }, signed(compared[code]?.score_change))] : [])));
  const missing = c.missing.map((id) => (lang === "zh" ? zhNames()[id] ?? id : id)).join(", ");
  const reasons = [...c.reasons.map((r, k) => reasonText(c.reasons_zh[k], r)), ...(c.missing.length ? [`${t("missing")}: ${missing}`] : [])];
  document.getElementById("reasons").replaceChildren(...reasons.map((r) => el("li", {}, r)));
  const inds = Object.fromEntries(results.catalogue.indicators.map((i) => [i.id, i]));
  document.querySelector("#indicators tbody").replaceChildren(...c.indicators.map((s) => {
    const ind = inds[s.id];
    const source = el("td", { class: "small" }, s.source || "");
    if (s.computed) {
      source.append(" ", el("span", { class: "badge" }, t("computed")));
      source.append(s.computed.functions ? platformDetails(s.computed, roundId) : el("details", {}, el("summary", {}, t("query")),
        el("pre", {}, `${s.computed.query}\n\n${JSON.stringify(s.computed.parameters, null, 1)}\n\n${JSON.stringify(s.computed.inputs)}`)));
    }
    if (s.evidence_sha256) {
      const link = el("a", { href: `/grading/rounds/${encodeURIComponent(roundId)}/evidence/${s.evidence_sha256}` },
        `${s.evidence_filename || t("download")}`);
      link.addEventListener("click", openFile);
      source.append(el("br"), link, " ", el("code", {}, s.evidence_sha256.slice(0, 12)));
    }
    if (s.link && /^https?:\/\//i.test(s.link)) {
      source.append(el("br"), el("a", { href: s.link, rel: "noopener noreferrer", target: "_blank" }, s.link));
    }
    if (s.entered_by) source.append(el("br"), s.entered_by);
    return el("tr", { "data-indicator": s.id },
      el("td", {}, nameOf(ind), el("br"), el("span", { class: "small" }, s.id)),
      el("td", { class: "n" }, `${valueText(s.value)} ${unitText(ind.unit)}`),
      el("td", { class: "n" }, Number(s.level.toPrecision(3))),
      el("td", { class: "n" }, `${s.points.toFixed(2)} / ${ind.weight}`),
      el("td", { class: "small" }, reasonText(s.reason_zh, s.reason, ind.unit)),
      source);
  }));
}

// "CIM platform in place": each function group declared with its evidence, and the missing ones
function platformDetails(computed, roundId) {
  const items = computed.functions.map((f) => {
    const link = el("a", { href: `/grading/rounds/${encodeURIComponent(roundId)}/evidence/${f.evidence_sha256}` }, f.file);
    link.addEventListener("click", openFile);
    return el("li", {}, `${nameOf(f)}: `, link, f.note ? ` (${f.note})` : "");
  });
  const missing = computed.missing.map((f) => el("li", { class: "missing" }, `${nameOf(f)}: ${t("lacking")}`));
  return el("details", {}, el("summary", {}, `${t("functions")} ${computed.functions.length}/7`),
    el("ul", {}, ...items, ...missing));
}

async function loadRound(roundId) {
  const [info, res] = await Promise.all([
    getJSON(`/grading/rounds/${encodeURIComponent(roundId)}`),
    getJSON(`/grading/rounds/${encodeURIComponent(roundId)}/results`),
  ]);
  results = res;
  compared = null;
  if (info.previous_round) {
    const cmp = await getJSON(`/grading/rounds/${encodeURIComponent(roundId)}/comparison`);
    compared = Object.fromEntries(cmp.cities.map((c) => [c.code, c]));
    comparedSameCatalogue = cmp.same_catalogue;
  }
  const status = t("status")[info.status] || info.status;
  document.getElementById("round-meta").textContent =
    `${info.year} · ${standardText(res.catalogue.standard)} · ${status}` + (info.results_sha256 ? ` · SHA-256 ${info.results_sha256.slice(0, 12)}` : "");
  document.getElementById("report-pdf").href = `/grading/rounds/${encodeURIComponent(roundId)}/report.pdf?lang=${lang}`;
  const provisional = res.catalogue.star_rule_provisional || res.catalogue.indicators.some((i) => i.provisional)
    || res.policy.provenance.status === "provisional";
  const notice = document.getElementById("notice");
  const notes = [...(provisional ? [t("provisional")] : []), ...(compared && !comparedSameCatalogue ? [t("otherCatalogue")] : [])];
  notice.hidden = !notes.length;
  notice.textContent = notes.join(" ");
  renderRanking();
  renderPolicy();
  const first = selected && res.cities.some((c) => c.code === selected) ? selected : res.cities[0]?.code;
  if (first) await showCity(first);
  document.body.dataset.ready = "true";
}

async function main() {
  applyLanguage();
  document.getElementById("report-pdf").addEventListener("click", openFile);
  document.getElementById("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem("cim.key", document.getElementById("key").value.trim());
    location.reload();
  });
  const rounds = await getJSON("/grading/rounds");
  const select = document.getElementById("round");
  select.replaceChildren(...rounds.map((r) => el("option", { value: r.id }, `${r.title} (${r.id})`)));
  if (!rounds.length) {
    const notice = document.getElementById("notice");
    notice.hidden = false;
    notice.textContent = t("noRounds");
    document.body.dataset.ready = "true";
    return;
  }
  const wanted = new URLSearchParams(location.search).get("round");
  if (wanted && rounds.some((r) => r.id === wanted)) select.value = wanted;
  select.addEventListener("change", () => loadRound(select.value));
  document.getElementById("lang").addEventListener("click", async () => {
    lang = lang === "zh" ? "en" : "zh";
    localStorage.setItem("cim.lang", lang);
    applyLanguage();
    await loadRound(select.value);
  });
  await loadRound(select.value);
}

main().catch((err) => {
  const notice = document.getElementById("notice");
  notice.hidden = false;
  notice.textContent = String(err);
  document.body.dataset.ready = "error";
});
