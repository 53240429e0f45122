/*
 * Parley embeddable chat widget.
 *
 *   <script src="https://HOST/static/assistant/widget.js" data-parley-server="https://HOST" async></script>
 *
 * One hand-written ES2020 file, no build step and no dependencies. It speaks the `/ws/chat/`
 * protocol described in docs/protocol.md; section numbers (§) below refer to that document.
 *
 * Layout of this file:
 *   1. Bootstrapping: our <script> tag, the server URL, the storage key
 *   2. Options (data- attributes + window.ParleySettings) and English UI strings
 *   3. Small helpers: DOM builder, icons, colours, ids
 *   4. Safe Markdown renderer (DOM nodes + textContent only, never innerHTML)
 *   5. Stylesheet (lives inside the shadow root)
 *   6. State
 *   7. Building the DOM
 *   8. Connection: connect, hello, reconnect with backoff, keep-alive
 *   9. Server frames
 *  10. Messages: creating, placing and rendering them
 *  11. Composer, outbox, rate limit and banners
 *  12. Feedback, end-of-chat survey, analytics events
 *  13. Human handoff: header menu, handoff status, typing, contact forms
 *  14. Open / close, focus management, unread badge
 *  15. Start-up and the public API (window.Parley)
 *
 * Connection policy: the widget connects lazily, on the first open, so that a page view that
 * never opens the chat costs the server nothing. If a session is already stored (the visitor
 * chatted before), it connects as soon as the page is idle, so that a reply still streaming is
 * received and the unread badge counts replies that finish while the panel is closed.
 *
 * Sending: each visitor message gets a client_id and waits in an outbox until its `ack`. The
 * outbox is sent one message at a time (the server refuses a message while a reply streams) and
 * again, with the same client_id, after a reconnect; the server deduplicates (§8). A message
 * refused with `rate_limited` stays pending and goes out by itself when the countdown ends; one
 * refused with `restarting` (the server process is shutting down) goes out on a new connection,
 * opened at once, like after a 1012 close; one refused with `reply_in_progress`,
 * `message_too_long` or `empty_message` is marked failed with the reason and a Retry button.
 *
 * Test hooks: every element the browser tests use has a data-testid (parley-launcher,
 * parley-message…). The greeting is not a stored message, so it is `parley-greeting`, not
 * `parley-message`. The host element carries data-state (closed|open) and data-connection
 * (connecting|open|offline|refused; "offline", without the banner, before the first connection).
 *
 * Security: message text is only ever put in the page through textContent/createElement. Links
 * are kept only for http:, https: and mailto: URLs.
 *
 * Library mode: loaded as <script src="…/widget.js" data-parley-library></script>, the file mounts
 * no widget and opens no connection; it only defines window.ParleyMarkdown.render(text, element),
 * the safe Markdown renderer of section 4 (it replaces the element's content), for pages such as
 * the agent desk that show replies the way the widget does.
 *
 * Human handoff (section 13; docs/widget.md "Talking to a person"): the host element's
 * data-handoff is ai|waiting|assigned|unavailable|ended.
 */
(() => {
  "use strict";

  // ---------------------------------------------------------------------------------------
  // 1. Bootstrapping
  // ---------------------------------------------------------------------------------------

  // document.currentScript is only set while this file runs for the first time, so read it now.
  const SCRIPT =
    document.currentScript ||
    Array.from(document.querySelectorAll("script[src]")).find((s) => {
      try {
        return new URL(s.src, location.href).pathname.endsWith("/assistant/widget.js");
      } catch (e) {
        return false;
      }
    }) ||
    null;
  const DATA = (SCRIPT && SCRIPT.dataset) || {};

  if ("parleyLibrary" in DATA) {
    // Library mode (see the top of this file): the renderer only, hoisted from section 4.
    window.ParleyMarkdown = window.ParleyMarkdown || Object.freeze({ render: (text, element) => renderMarkdown(String(text == null ? "" : text), element) });
    return;
  }
  if (window.Parley) return; // loaded twice: the first copy keeps working

  const SERVER = (() => {
    let base = DATA.parleyServer;
    if (!base) base = SCRIPT && SCRIPT.src ? new URL(SCRIPT.src, location.href).origin : location.origin;
    const url = new URL(base, location.href);
    return { origin: url.origin, base: url.origin + url.pathname.replace(/\/+$/, "") };
  })();
  const WS_URL = SERVER.base.replace(/^http/i, "ws") + "/ws/chat/"; // http→ws, https→wss
  const STORE_KEY = "parley:" + SERVER.origin;

  // ---------------------------------------------------------------------------------------
  // 2. Options and strings
  // ---------------------------------------------------------------------------------------

  // English defaults; every one can be replaced through ParleySettings.strings. String literals
  // in this file stay ASCII (\u escapes) so that a proxy that drops the charset can't garble them.
  const STRINGS = {
    title: "Chat with us",
    openChat: "Open chat",
    closeChat: "Close chat",
    unread: "{n} unread",
    placeholder: "Type your message\u2026",
    send: "Send",
    stop: "Stop",
    close: "Close",
    endChat: "End chat",
    offline: "You are offline. Reconnecting\u2026",
    unavailable: "Chat is unavailable on this site.",
    rateLimited: "Too many messages. Try again in {s} s.",
    tooLong: "Message too long: {n}/{max} characters.",
    empty: "The message is empty.",
    replyInProgress: "Please wait for the current reply to finish.",
    errorGeneric: "Something went wrong. Please try again.",
    notSent: "Not sent.",
    retry: "Retry",
    dismiss: "Dismiss",
    you: "You",
    assistant: "Assistant",
    typing: "The assistant is typing",
    interrupted: "This reply was interrupted.",
    failed: "The assistant could not answer.",
    stopped: "Stopped.",
    sources: "Sources",
    thumbUp: "Helpful",
    thumbDown: "Not helpful",
    feedbackComment: "What was wrong? (optional)",
    feedbackSubmit: "Send feedback",
    feedbackThanks: "Thanks for your feedback!",
    rateTitle: "How would you rate this chat?",
    star: "{n} out of 5 stars",
    resolvedQuestion: "Did this solve your problem?",
    yes: "Yes",
    no: "No",
    ratingComment: "Anything else you want to tell us? (optional)",
    submit: "Submit",
    thanks: "Thank you for your feedback!",
    chatEnded: "This chat has ended. Send a message to start again.",
    historyTruncated: "Earlier messages are not shown.",
    menu: "More options",
    talkToPerson: "Talk to a person",
    waiting: "Waiting for a person\u2026",
    position: "You are number {n} in the queue.",
    estimate: "About {m} min.",
    assigned: "{name} joined the chat.",
    handoffEnded: "The conversation with a person is over. The assistant is answering again.",
    someone: "Someone",
    agentTyping: "{name} is typing\u2026",
    noAgent: "Nobody is available right now. Leave your email and we will get back to you.",
    askContact: "Before we start, how can we reach you?",
    email: "Email",
    name: "Name (optional)",
    contactMessage: "Your message (optional)",
    badEmail: "Please enter a valid email address.",
    skip: "Skip",
    contactThanks: "Thanks! We will get back to you by email. Meanwhile, the assistant can keep helping.",
    contactSaved: "Thanks, we have your details.",
  };

  /** Reads the options; ParleySettings wins over data- attributes. Called once, at start-up. */
  function readOptions() {
    const s = window.ParleySettings && typeof window.ParleySettings === "object" ? window.ParleySettings : {};
    const pick = (key, attr) => (s[key] !== undefined && s[key] !== null ? s[key] : attr);
    const strings = Object.assign({}, STRINGS);
    if (s.strings && typeof s.strings === "object") {
      for (const [k, v] of Object.entries(s.strings)) if (typeof v === "string") strings[k] = v;
    }
    const quick = pick("quickReplies", DATA.quickReplies ? DATA.quickReplies.split("|") : undefined);
    const greeting = pick("greeting", DATA.greeting);
    const z = Number(pick("zIndex", DATA.zIndex));
    return {
      position: String(pick("position", DATA.position) || "right").toLowerCase() === "left" ? "left" : "right",
      color: String(pick("color", DATA.color) || "#1f5eff"),
      title: String(pick("title", DATA.title) || strings.title),
      greeting: typeof greeting === "string" ? greeting : null,
      quickReplies: Array.isArray(quick) ? quick.filter((q) => typeof q === "string" && q.trim()) : null,
      openOnLoad: [true, "true", "1", ""].includes(pick("openOnLoad", DATA.openOnLoad)),
      identity: cleanIdentity(s.identity),
      zIndex: Number.isFinite(z) && z !== 0 ? Math.round(z) : 2147483000,
      strings,
    };
  }

  /** Keeps only the identity fields the protocol knows (§11): unknown fields would be refused. */
  function cleanIdentity(x) {
    if (!x || typeof x !== "object") return null;
    const userId = typeof x.user_id === "number" ? String(x.user_id) : x.user_id;
    if (typeof userId !== "string" || !userId) return null;
    const out = { user_id: userId };
    for (const k of ["name", "email", "user_type", "signature"]) {
      if (typeof x[k] === "string" && x[k]) out[k] = x[k];
    }
    // Signed with the identity (unix seconds); a template may render it as a string of digits.
    const issuedAt = typeof x.issued_at === "string" && /^\d+$/.test(x.issued_at) ? Number(x.issued_at) : x.issued_at;
    if (Number.isSafeInteger(issuedAt) && issuedAt >= 0) out.issued_at = issuedAt;
    return out;
  }

  // ---------------------------------------------------------------------------------------
  // 3. Helpers
  // ---------------------------------------------------------------------------------------

  /** createElement with attributes, listeners (`onclick`…) and children (strings become text). */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") el.className = v;
      else if (k === "text") el.textContent = v;
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(c);
    return el;
  }

  /** "Try again in {s} s." + {s: 3} → "Try again in 3 s." */
  const fmt = (text, values) => text.replace(/\{(\w+)\}/g, (m, k) => (k in values ? String(values[k]) : m));

  /** Length in Unicode code points, as the server counts it (§1). */
  const codePoints = (text) => Array.from(text).length;

  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID(); // secure contexts only
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 15) | 64;
    b[8] = (b[8] & 63) | 128;
    const x = Array.from(b, (v) => v.toString(16).padStart(2, "0")).join("");
    return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
  }

  const SVG = "http://www.w3.org/2000/svg";
  const ICONS = {
    chat: "M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2z",
    close: "M6.4 5L12 10.6 17.6 5 19 6.4 13.4 12 19 17.6 17.6 19 12 13.4 6.4 19 5 17.6 10.6 12 5 6.4z",
    send: "M3 20.5l18-8.5L3 3.5v6.6l12.4 1.9L3 13.9z",
    stop: "M7 7h10v10H7z",
    up: "M1 21h4V9H1v12zm22-11a2 2 0 0 0-2-2h-6.3l.95-4.57.03-.32c0-.41-.17-.79-.44-1.06L14.17 1 7.59 7.59A1.98 1.98 0 0 0 7 9v10a2 2 0 0 0 2 2h9c.83 0 1.54-.5 1.84-1.22l3.02-7.05c.09-.23.14-.47.14-.73v-2z",
    down: "M15 3H6c-.83 0-1.54.5-1.84 1.22l-3.02 7.05c-.09.23-.14.47-.14.73v2a2 2 0 0 0 2 2h6.31l-.95 4.57-.03.32c0 .41.17.79.44 1.06L9.83 23l6.59-6.59c.36-.36.58-.86.58-1.41V5a2 2 0 0 0-2-2zm4 0v12h4V3h-4z",
    more: "M12 8a2 2 0 1 0 0-4 2 2 0 0 0 0 4zm0 6a2 2 0 1 0 0-4 2 2 0 0 0 0 4zm0 6a2 2 0 1 0 0-4 2 2 0 0 0 0 4z",
    star: "M12 17.3l-6.2 3.7 1.6-7L2 9.3l7.1-.6L12 2l2.9 6.7 7.1.6-5.4 4.7 1.6 7z",
  };

  /** A decorative inline SVG icon (static path data, hidden from assistive technology). */
  function icon(name, size = 20) {
    const svg = document.createElementNS(SVG, "svg");
    for (const [k, v] of Object.entries({ viewBox: "0 0 24 24", width: size, height: size, "aria-hidden": "true", focusable: "false" })) {
      svg.setAttribute(k, String(v));
    }
    const path = document.createElementNS(SVG, "path");
    path.setAttribute("d", ICONS[name]);
    path.setAttribute("fill", "currentColor");
    svg.append(path);
    return svg;
  }

  /** Relative luminance (WCAG 2) of an "rgb(r, g, b)" string, or null. */
  function luminance(rgb) {
    const m = String(rgb).match(/[\d.]+/g);
    if (!m || m.length < 3) return null;
    const [r, g, b] = m.slice(0, 3).map((v) => {
      const c = Number(v) / 255;
      return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  }
  const contrast = (a, b) => (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);

  // ---------------------------------------------------------------------------------------
  // 4. Safe Markdown renderer
  // ---------------------------------------------------------------------------------------
  // Supports paragraphs (single newlines are kept as line breaks, chat style), **bold**,
  // *italics*/_italics_, `inline code`, fenced code blocks, bullet and numbered lists (nested by
  // indentation), headings (shown bold), > quotes, --- rules, [links](url) and bare URLs.
  // Anything else shows as the text it is. An unclosed construct (common mid-stream) also shows
  // as text until its closing marker arrives.

  /** The URL if it is an absolute http(s) or mailto URL, else null. */
  function safeUrl(raw) {
    const s = raw.trim().replace(/^<(.*)>$/, "$1");
    if (!/^(https?:\/\/|mailto:)/i.test(s)) return null; // also refuses relative URLs
    try {
      const url = new URL(s);
      return ["http:", "https:", "mailto:"].includes(url.protocol) ? url.href : null;
    } catch (e) {
      return null;
    }
  }

  function link(href, label, depth) {
    const a = h("a", { href, target: "_blank", rel: "noopener noreferrer" });
    renderInline(label, a, depth + 1, true);
    return a;
  }

  /** Index of the closing emphasis marker `mark` at or after `from`, or -1. */
  function findClose(src, mark, from) {
    const ch = mark[0];
    for (let j = src.indexOf(mark, from + 1); j !== -1; j = src.indexOf(mark, j + 1)) {
      if (/\s/.test(src[j - 1])) continue; // a closer follows text, not a space
      if (mark.length === 1 && (src[j + 1] === ch || src[j - 1] === ch)) continue; // part of "**"
      if (ch === "_" && /\w/.test(src[j + mark.length] || "")) continue; // snake_case_word
      while (mark.length === 2 && src[j + 2] === ch) j++; // "***x***": the inner "*" is italics
      return j;
    }
    return -1;
  }

  /** Appends the inline Markdown of `src` to `parent` as DOM nodes. */
  function renderInline(src, parent, depth = 0, inLink = false) {
    let buf = "";
    const flush = () => {
      if (buf) parent.append(buf); // a string becomes a text node: never parsed as HTML
      buf = "";
    };
    let i = 0;
    while (i < src.length) {
      const c = src[i];
      // Backslash escapes: \* shows a literal star.
      if (c === "\\" && /[\\`*_[\]()#+\-.!>~|]/.test(src[i + 1] || "")) {
        buf += src[i + 1];
        i += 2;
        continue;
      }
      // `code`: a run of N backticks closed by the same run.
      if (c === "`") {
        let n = 1;
        while (src[i + n] === "`") n++;
        const fence = "`".repeat(n);
        const end = src.indexOf(fence, i + n);
        if (end !== -1) {
          flush();
          parent.append(h("code", { text: src.slice(i + n, end) }));
          i = end + n;
          continue;
        }
        buf += fence;
        i += n;
        continue;
      }
      // **bold**, __bold__, *italics*, _italics_
      if ((c === "*" || c === "_") && depth < 6) {
        const mark = src[i + 1] === c ? c + c : c;
        const start = i + mark.length;
        const opens = src[start] && !/\s/.test(src[start]) && !(c === "_" && /\w/.test(src[i - 1] || ""));
        const end = opens ? findClose(src, mark, start - 1) : -1;
        if (end > start) {
          flush();
          const el = h(mark.length === 2 ? "strong" : "em");
          renderInline(src.slice(start, end), el, depth + 1, inLink);
          parent.append(el);
          i = end + mark.length;
          continue;
        }
        buf += mark;
        i += mark.length;
        continue;
      }
      // [label](url): the label is shown as plain text when the URL is not allowed.
      if (c === "[" && !inLink) {
        const close = src.indexOf("]", i + 1);
        if (close !== -1 && src[close + 1] === "(") {
          let j = close + 2;
          let open = 1; // URLs may contain balanced parentheses (Wikipedia)
          for (; j < src.length; j++) {
            if (src[j] === "(") open++;
            else if (src[j] === ")" && --open === 0) break;
          }
          if (j < src.length) {
            flush();
            const label = src.slice(i + 1, close);
            const href = safeUrl(src.slice(close + 2, j).replace(/\s+["'(].*$/, "")); // drop a "title"
            if (href) parent.append(link(href, label, depth));
            else renderInline(label, parent, depth + 1, inLink);
            i = j + 1;
            continue;
          }
        }
      }
      // Bare http(s) URL, without trailing punctuation.
      if ((c === "h" || c === "H") && !inLink && !/\w/.test(src[i - 1] || "")) {
        const m = /^https?:\/\/[^\s<>"'`]+/i.exec(src.slice(i, i + 2048));
        if (m) {
          const text = m[0].replace(/[.,;:!?)\]*_]+$/, "");
          const href = safeUrl(text);
          if (href && text.length > 8) {
            flush();
            parent.append(link(href, text, depth));
            i += text.length;
            continue;
          }
        }
      }
      buf += c;
      i++;
    }
    flush();
  }

  /** Replaces the content of `root` with the rendered Markdown of `text`. */
  function renderMarkdown(text, root) {
    root.textContent = "";
    const lines = text.replace(/\r\n?/g, "\n").split("\n");
    let para = null; // the <p> or <blockquote> that following lines continue
    let lists = []; // open lists, outermost first: {indent, el, ordered, item}
    let blank = false; // the previous line was blank
    const closeAll = () => {
      para = null;
      lists = [];
    };
    const block = (el) => {
      closeAll();
      root.append(el);
      return el;
    };

    for (let i = 0; i < lines.length; i++) {
      const line = lines[i];
      let m;
      // Fenced code block; an unclosed fence (still streaming) runs to the end of the text.
      if ((m = /^\s*(`{3,}|~{3,})\s*([\w+#.-]*)/.exec(line))) {
        const code = [];
        while (++i < lines.length && !lines[i].trim().startsWith(m[1])) code.push(lines[i]);
        block(h("pre", null, h("code", { "data-lang": m[2] || null, text: code.join("\n") })));
        blank = false;
        continue;
      }
      if (!line.trim()) {
        para = null;
        blank = true;
        continue;
      }
      if (/^\s{0,3}([-*_])(\s*\1){2,}\s*$/.test(line)) {
        block(h("hr"));
      } else if ((m = /^\s{0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$/.exec(line))) {
        const strong = h("strong");
        renderInline(m[2], strong);
        block(h("p", { class: "md-h" }, strong));
      } else if ((m = /^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$/.exec(line))) {
        const indent = m[1].replace(/\t/g, "    ").length;
        const ordered = /\d/.test(m[2]);
        para = null;
        if (blank && !lists.length) closeAll();
        while (lists.length && lists[lists.length - 1].indent > indent) lists.pop();
        let top = lists[lists.length - 1];
        if (top && indent >= top.indent + 2 && top.item) {
          // Indented under the previous item: a nested list.
          const el = h(ordered ? "ol" : "ul");
          top.item.append(el);
          top = { indent, el, ordered, item: null };
          lists.push(top);
        } else if (!top || top.ordered !== ordered) {
          if (top) lists.pop();
          const el = h(ordered ? "ol" : "ul");
          const parentItem = lists.length ? lists[lists.length - 1].item : null;
          (parentItem || root).append(el);
          top = { indent, el, ordered, item: null };
          lists.push(top);
        }
        if (ordered && !top.el.children.length) {
          const start = parseInt(m[2], 10);
          if (start !== 1) top.el.setAttribute("start", String(start));
        }
        top.item = h("li");
        renderInline(m[3], top.item);
        top.el.append(top.item);
      } else if (lists.length && (!blank || /^\s{2,}/.test(line))) {
        // Continuation of the current list item.
        const item = lists[lists.length - 1].item;
        if (item) {
          item.append(blank ? h("br") : " ");
          if (blank) item.append(h("br"));
          renderInline(line.trim(), item);
        }
      } else if ((m = /^\s{0,3}>\s?(.*)$/.exec(line))) {
        if (!para || para.tagName !== "BLOCKQUOTE") para = block(h("blockquote"));
        else para.append(h("br"));
        renderInline(m[1], para);
      } else {
        if (!para || para.tagName !== "P") {
          closeAll();
          para = root.appendChild(h("p"));
        } else {
          para.append(h("br"));
        }
        renderInline(line, para);
      }
      blank = false;
    }
  }

  // ---------------------------------------------------------------------------------------
  // 5. Stylesheet (scoped to the shadow root: nothing leaks out, the page's CSS cannot get in)
  // ---------------------------------------------------------------------------------------

  const STYLE = `
:host{all:initial}
.root{--accent:#1f5eff;--on-accent:#fff;--ink:#1f5eff;--fg:#1b1f29;--muted:#576071;--line:#e2e5eb;--soft:#f1f3f7;--danger:#b42318;
font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--fg);text-align:left;-webkit-font-smoothing:antialiased}
*,*::before,*::after{box-sizing:border-box}
[hidden]{display:none!important}
button{font:inherit;color:inherit;background:none;border:0;margin:0;padding:0;cursor:pointer;text-align:inherit}
button:disabled{cursor:default;opacity:.5}
:focus-visible{outline:2px solid var(--ink);outline-offset:2px}
p,h2{margin:0}
textarea,input{font:inherit;color:var(--fg);background:#fff;border:1px solid #b9bfcb;border-radius:10px;padding:8px 10px;resize:none;width:100%;margin:0;display:block}
textarea:focus,input:focus{border-color:var(--ink);outline:2px solid var(--ink);outline-offset:-1px}
textarea::placeholder,input::placeholder{color:#6b7280}
[aria-invalid=true]{border-color:var(--danger)}
.launcher{position:fixed;bottom:20px;right:20px;z-index:var(--z);width:58px;height:58px;border-radius:50%;background:var(--accent);color:var(--on-accent);display:flex;align-items:center;justify-content:center;box-shadow:0 6px 20px rgba(16,24,40,.28);transition:transform .15s ease}
.launcher:hover{transform:scale(1.06)}
.launcher:focus-visible{outline:3px solid var(--ink);outline-offset:3px}
.left .launcher,.left .panel{right:auto;left:20px}
.badge{position:absolute;top:-3px;right:-3px;min-width:20px;height:20px;padding:0 6px;border-radius:10px;background:#c4320a;color:#fff;font-size:12px;font-weight:700;line-height:20px;text-align:center;box-shadow:0 0 0 2px #fff}
.panel{position:fixed;bottom:90px;right:20px;z-index:var(--z);width:380px;height:600px;max-height:calc(100vh - 110px);display:flex;flex-direction:column;background:#fff;border-radius:16px;overflow:hidden;box-shadow:0 12px 48px rgba(16,24,40,.3);animation:pop .18s ease-out}
@keyframes pop{from{opacity:0;transform:translateY(12px) scale(.98)}}
.header{display:flex;align-items:center;gap:6px;padding:12px 10px 12px 18px;background:var(--accent);color:var(--on-accent)}
.title{font:inherit;flex:1;min-width:0;font-size:16px;font-weight:600;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.hbtn{border-radius:8px;padding:6px 10px;font-size:13px;font-weight:500}
.hbtn:hover{background:color-mix(in srgb,currentColor 16%,transparent)}
.header :focus-visible{outline-color:currentColor}
.icon{width:34px;height:34px;padding:0;display:grid;place-items:center}
.banner{padding:8px 14px;font-size:13px;display:flex;gap:8px;align-items:center}
.banner>span{flex:1}
.offline{background:#fff4e5;color:#6b3a00}
.error{background:#fdecea;color:#8a1c12}
.unavailable{background:#f2f4f7;color:#344054}
.hs{background:#eef3ff;color:#1b2f6b}
.mw{position:relative}
.menu{position:absolute;right:0;top:calc(100% + 4px);z-index:1;min-width:180px;padding:4px;background:#fff;color:var(--fg);border:1px solid var(--line);border-radius:10px;box-shadow:0 6px 20px rgba(16,24,40,.2)}
.mi{display:block;width:100%;padding:8px 12px;border-radius:6px;white-space:nowrap}
.mi:hover,.mi:focus{background:var(--soft)}
.agt{font-size:12px;color:var(--muted);padding-top:8px}
.agt:empty{display:none}
.scroller{flex:1;overflow-y:auto;overscroll-behavior:contain;padding:16px 14px 10px;background:#fafbfc}
.log{display:flex;flex-direction:column;gap:10px}
.msg{display:flex;flex-direction:column;max-width:88%;align-self:flex-start}
.msg.user{align-self:flex-end;align-items:flex-end}
.bubble{padding:9px 13px;border-radius:16px;overflow-wrap:anywhere}
.bubble::before{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap;content:var(--who-assistant)}
.user .bubble::before{content:var(--who-user)}
.user .bubble{background:var(--accent);color:var(--on-accent);border-bottom-right-radius:4px;white-space:pre-wrap}
.assistant .bubble{background:var(--soft);border-bottom-left-radius:4px}
.msg[data-status=pending] .bubble{opacity:.7}
.user[data-status=failed] .bubble{background:#fdecea;color:#8a1c12}
.text p,.text ul,.text ol,.text pre,.text blockquote{margin:0 0 8px}
.text>:last-child{margin-bottom:0}
.text ul,.text ol{padding-left:20px}
.text li+li{margin-top:2px}
.text li>ul,.text li>ol{margin:2px 0}
.text code{font:12.5px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:rgba(27,31,41,.08);padding:1px 4px;border-radius:4px}
.text pre{background:#1b1f29;color:#f3f4f6;padding:10px 12px;border-radius:8px;overflow-x:auto}
.text pre code{background:none;padding:0;color:inherit;white-space:pre}
.text a{color:#1746c9;text-decoration:underline}
.text blockquote{border-left:3px solid #c9ced8;padding-left:10px;color:var(--muted)}
.text hr{border:0;border-top:1px solid #c9ced8;margin:8px 0}
.meta{display:flex;flex-direction:column;align-items:flex-start;gap:4px;margin-top:4px;font-size:12px;color:var(--muted)}
.user .meta{align-items:flex-end}
.meta:empty{display:none}
.note.err{color:var(--danger)}
.linkbtn{color:#1746c9;text-decoration:underline;margin-left:4px}
.thumbs{display:flex;gap:2px}
.thumb{width:30px;height:30px;border-radius:8px;display:grid;place-items:center;color:var(--muted)}
.thumb:hover{background:var(--soft)}
.thumb[aria-pressed=true]{color:var(--ink);background:color-mix(in srgb,var(--accent) 12%,#fff)}
.fb{display:flex;flex-direction:column;gap:6px;width:280px;max-width:100%}
.typing{display:inline-flex;gap:4px;padding:5px 0}
.typing i{width:7px;height:7px;border-radius:50%;background:#6b7280;animation:blink 1.2s infinite both}
.typing i:nth-child(2){animation-delay:.2s}
.typing i:nth-child(3){animation-delay:.4s}
@keyframes blink{0%,80%,100%{opacity:.3;transform:none}40%{opacity:1;transform:translateY(-3px)}}
.divider{align-self:center;max-width:90%;font-size:12px;color:var(--muted);text-align:center}
.chips{display:flex;flex-wrap:wrap;gap:8px;justify-content:flex-end;padding-top:12px}
.chip{border:1px solid var(--ink);color:var(--ink);background:#fff;border-radius:999px;padding:6px 12px;font-size:13px}
.chip:hover{background:color-mix(in srgb,var(--accent) 8%,#fff)}
.composer{border-top:1px solid var(--line);padding:10px 12px;background:#fff}
.row{display:flex;align-items:flex-end;gap:8px}
.input{flex:1;min-height:40px;max-height:120px}
.send,.stop{flex:none;width:40px;height:40px;border-radius:50%;background:var(--accent);color:var(--on-accent);display:grid;place-items:center}
.stop{background:var(--fg);color:#fff}
.counter{font-size:12px;color:var(--muted);text-align:right;margin-top:4px}
.counter.over{color:var(--danger);font-weight:600}
.rating{align-self:stretch;background:#fff;border:1px solid var(--line);border-radius:12px;padding:14px;display:flex;flex-direction:column;gap:10px}
.rt{font-weight:600}
.stars,.yn{display:flex;gap:6px}
.star{width:36px;height:36px;border-radius:8px;display:grid;place-items:center;color:#8a93a3}
.star.on{color:#b54708}
.pill{border:1px solid #b9bfcb;border-radius:999px;padding:5px 16px}
.pill[aria-pressed=true]{background:var(--accent);border-color:var(--accent);color:var(--on-accent)}
.primary{align-self:flex-start;background:var(--accent);color:var(--on-accent);border-radius:10px;padding:8px 16px;font-weight:600}
@media (max-width:480px){
.root .panel{inset:0;width:auto;height:auto;max-height:none;border-radius:0}
.root.open .launcher{display:none}
textarea{font-size:16px}
}
@media (prefers-reduced-motion:reduce){*,*::before,*::after{animation:none!important;transition:none!important}}
`;

  // ---------------------------------------------------------------------------------------
  // 6. State
  // ---------------------------------------------------------------------------------------

  let opts = null; // readOptions(), at start-up
  let S = STRINGS; // the UI strings in use
  let host = null; // <parley-widget>, in the page
  let shadow = null;
  const ui = {}; // references to the widget's own elements
  let destroyed = false;
  let isOpen = false;

  let session = null; // {session_id, token}, read from localStorage at start-up
  let ws = null; // the current WebSocket, or null
  let ready = false; // a `hello` succeeded on `ws`
  let conn = "offline"; // data-connection: connecting | open | offline | refused
  let attempted = false; // we tried to connect at least once
  let failures = 0; // failed connections since the last `welcome` (the backoff exponent)
  let browserOffline = navigator.onLine === false;
  let helloRetried = false;
  let restarted = false; // reconnected at once after a server restart (1012) since the last welcome
  let reconnectTimer = 0;
  let tickTimer = 0;
  let lastPingAt = 0;
  let pingSentAt = 0; // a ping waiting for any frame back
  let lastActivityAt = 0; // last reply frame, for the stalled-reply check (§9)

  let maxChars = 1000; // welcome.config.max_chars
  let serverGreeting = "";
  let serverQuick = [];
  let historyKnown = true; // false until we know whether the visitor wrote anything
  const bySeq = new Map(); // seq → message
  const byClient = new Map(); // client_id → visitor message
  let outbox = []; // visitor messages without `ack`, oldest first
  let frameQueue = []; // other frames waiting for a successful hello
  let busy = false; // a reply of this session is being generated (Stop is shown)
  let personAnswers = false; // a person at the agent desk has the conversation: no AI reply follows an ack
  let handoff = "ai"; // the last handoff.status state (data-handoff), "ai" before any
  let askContact = "off"; // welcome.config.ask_contact (WIDGET_ASK_CONTACT)
  let contactForm = null; // the contact form being shown: {el, prechat, done, fail}
  let typingOn = false; // we told the server the visitor is typing
  let typingAt = 0; // when we last sent `typing start`
  let typingTimer = 0;
  let agentTypingTimer = 0;
  let rateUntil = 0; // Date.now() before which messages are refused (rate_limited)
  let rateTimer = 0;
  let errorTimer = 0;
  let unread = 0;
  let survey = null; // the end-of-chat survey being shown
  let extras = []; // notes and surveys in the log (removed when the session changes)
  let stick = true; // the message list is scrolled to the bottom: keep it there
  const dirty = new Set(); // assistant messages whose Markdown needs rendering
  let renderFrame = 0;

  function loadSession() {
    try {
      const v = JSON.parse(localStorage.getItem(STORE_KEY) || "null");
      return v && typeof v.session_id === "string" && typeof v.token === "string" ? v : null;
    } catch (e) {
      return null; // storage disabled (privacy mode, sandboxed frame): sessions just don't persist
    }
  }

  function saveSession(v) {
    try {
      if (v) localStorage.setItem(STORE_KEY, JSON.stringify(v));
      else localStorage.removeItem(STORE_KEY);
    } catch (e) {
      /* see loadSession */
    }
  }

  // ---------------------------------------------------------------------------------------
  // 7. Building the DOM
  // ---------------------------------------------------------------------------------------

  function build() {
    host = document.createElement("parley-widget");
    host.dataset.state = "closed";
    host.dataset.handoff = handoff;
    shadow = host.attachShadow({ mode: "open" }); // open: the browser tests reach inside

    ui.root = h("div", { class: "root" + (opts.position === "left" ? " left" : "") });
    ui.root.style.setProperty("--z", String(opts.zIndex));
    // "You:" / "Assistant:" before each bubble for screen readers, as CSS generated content so
    // that it is not part of the message's text.
    ui.root.style.setProperty("--who-user", JSON.stringify(S.you + ": "));
    ui.root.style.setProperty("--who-assistant", JSON.stringify(S.assistant + ": "));

    ui.badge = h("span", { class: "badge", "data-testid": "parley-badge", "aria-hidden": "true", hidden: true });
    ui.launcher = h(
      "button",
      { type: "button", class: "launcher", "data-testid": "parley-launcher", "aria-label": S.openChat, "aria-expanded": "false", "aria-controls": "parley-panel", onclick: toggle },
      icon("chat", 26),
      ui.badge,
    );

    ui.title = h("h2", { class: "title", id: "parley-title", "data-testid": "parley-title", text: opts.title });
    ui.end = h("button", { type: "button", class: "hbtn", "data-testid": "parley-end", text: S.endChat, disabled: true, onclick: endChat });
    ui.close = h("button", { type: "button", class: "hbtn icon", "data-testid": "parley-close", "aria-label": S.closeChat, title: S.close, onclick: () => close() }, icon("close"));

    ui.offline = h("div", { class: "banner offline", role: "status", "data-testid": "parley-offline", hidden: true }, S.offline);
    ui.errorText = h("span");
    ui.error = h(
      "div",
      { class: "banner error", role: "alert", "data-testid": "parley-error", hidden: true },
      ui.errorText,
      h("button", { type: "button", class: "icon", "aria-label": S.dismiss, onclick: hideError }, icon("close", 16)),
    );
    ui.unavailable = h("div", { class: "banner unavailable", role: "status", "data-testid": "parley-unavailable", hidden: true }, S.unavailable);
    ui.handoff = h("div", { class: "banner hs", role: "status", "data-testid": "parley-handoff-status", hidden: true });

    // The header menu (a menu button: Enter/Space/click opens it, arrows move, Esc closes).
    ui.menuBtn = h(
      "button",
      { type: "button", class: "hbtn icon", "data-testid": "parley-menu", "aria-label": S.menu, title: S.menu, "aria-haspopup": "menu", "aria-expanded": "false", "aria-controls": "parley-menu", onclick: () => toggleMenu(ui.menu.hidden) },
      icon("more"),
    );
    ui.menu = h(
      "div",
      { class: "menu", id: "parley-menu", role: "menu", "aria-label": S.menu, hidden: true },
      h("button", { type: "button", class: "mi", role: "menuitem", tabindex: "-1", "data-testid": "parley-talk-to-person", text: S.talkToPerson, onclick: () => (toggleMenu(false, true), askPerson()) }),
    );
    const menuWrap = h("div", { class: "mw", onkeydown: onMenuKey }, ui.menuBtn, ui.menu);
    menuWrap.addEventListener("focusout", (e) => menuWrap.contains(e.relatedTarget) || toggleMenu(false));

    ui.log = h("div", { class: "log", role: "log", "aria-live": "polite", "aria-label": opts.title, "data-testid": "parley-messages", onclick: onLogClick });
    ui.chips = h("div", { class: "chips", "data-testid": "parley-quick-replies", hidden: true });
    // Always in the page (empty is hidden by CSS), so that its changes are announced.
    ui.agentTyping = h("p", { class: "agt", role: "status", "aria-live": "polite", "data-testid": "parley-agent-typing" });
    ui.offer = h(
      "div",
      { class: "chips", hidden: true },
      h("button", { type: "button", class: "chip", "data-testid": "parley-handoff-offer", text: S.talkToPerson, onclick: askPerson }),
    );
    ui.scroller = h("div", { class: "scroller", onscroll: () => (stick = isAtBottom()) }, ui.log, ui.agentTyping, ui.offer, ui.chips);

    ui.input = h("textarea", {
      class: "input",
      rows: 1,
      "data-testid": "parley-input",
      "aria-label": S.placeholder,
      placeholder: S.placeholder,
      oninput: onInput,
      onkeydown: onInputKey,
    });
    ui.send = h("button", { type: "button", class: "send", "data-testid": "parley-send", "aria-label": S.send, title: S.send, onclick: () => submit() }, icon("send"));
    ui.stop = h("button", { type: "button", class: "stop", "data-testid": "parley-stop", "aria-label": S.stop, title: S.stop, hidden: true, onclick: stopReply }, icon("stop", 18));
    ui.counter = h("div", { class: "counter", "data-testid": "parley-counter", id: "parley-counter", hidden: true });
    ui.input.setAttribute("aria-describedby", "parley-counter");

    ui.panel = h(
      "div",
      { class: "panel", id: "parley-panel", role: "dialog", "aria-label": opts.title, "data-testid": "parley-panel", hidden: true, onkeydown: onPanelKey },
      h("div", { class: "header" }, ui.title, ui.end, menuWrap, ui.close),
      ui.offline,
      ui.error,
      ui.unavailable,
      ui.handoff,
      ui.scroller,
      h("div", { class: "composer" }, h("div", { class: "row" }, ui.input, ui.send, ui.stop), ui.counter),
    );

    ui.root.append(ui.launcher, ui.panel);
    shadow.append(h("style", { text: STYLE }), ui.root);
    document.body.append(host);
    applyColor(opts.color);

    if (opts.greeting !== null) renderGreeting();
    renderQuickReplies();
    setConn(conn);
  }

  /** Sets the accent colour and picks readable colours to go with it (WCAG AA). */
  function applyColor(color) {
    if (!window.CSS || !CSS.supports("color", color)) return;
    const probe = h("span", { hidden: true });
    probe.style.color = color;
    ui.root.append(probe);
    const lum = luminance(getComputedStyle(probe).color);
    probe.remove();
    ui.root.style.setProperty("--accent", color);
    if (lum === null) return;
    const dark = 0.0118; // luminance of #1b1f29
    ui.root.style.setProperty("--on-accent", contrast(lum, 1) >= 4.5 || contrast(lum, 1) >= contrast(lum, dark) ? "#fff" : "#1b1f29");
    // Accent-coloured text/outlines on white (chips, focus rings) need contrast with white.
    ui.root.style.setProperty("--ink", contrast(lum, 1) >= 4.5 ? color : "#1b1f29");
  }

  // ---------------------------------------------------------------------------------------
  // 8. Connection
  // ---------------------------------------------------------------------------------------

  /** Opens the websocket unless one is open or opening (or the server refused us). */
  function connect() {
    if (destroyed || ws || conn === "refused") return;
    clearTimeout(reconnectTimer);
    reconnectTimer = 0;
    attempted = true;
    setConn(failures ? "offline" : "connecting");
    let sock;
    try {
      sock = new WebSocket(WS_URL);
    } catch (e) {
      failures++;
      scheduleReconnect(false);
      return;
    }
    ws = sock;
    ready = false;
    sock.onopen = () => {
      if (ws !== sock) return;
      lastPingAt = Date.now();
      sendHello();
    };
    sock.onmessage = (ev) => {
      if (ws !== sock) return;
      pingSentAt = 0; // any frame proves the connection is alive
      let frame = null;
      try {
        frame = JSON.parse(ev.data);
      } catch (e) {
        return;
      }
      if (frame && typeof frame.type === "string") handleFrame(frame);
    };
    sock.onclose = (ev) => {
      if (ws === sock) socketClosed(ev.code);
    };
  }

  /** Forgets the current socket without waiting for a close handshake (it may never come). */
  function detachSocket() {
    const sock = ws;
    ws = null;
    ready = false;
    if (!sock) return;
    sock.onopen = sock.onmessage = sock.onclose = sock.onerror = null;
    try {
      sock.close();
    } catch (e) {
      /* already closed */
    }
  }

  /** After the socket closed (or we gave up on it): decide whether and when to reconnect. */
  function socketClosed(code) {
    detachSocket();
    for (const m of outbox) m.sent = false; // resent (same client_id) after the next welcome
    if (code === 4403) {
      // Origin not allowed, or a signed identity is required (§13): never retry by ourselves.
      clearTimeout(reconnectTimer);
      setConn("refused");
      return;
    }
    if (code === 1012 && !restarted) {
      // The server process is restarting (§9): another one takes over now, so reconnect at once
      // (resend the outbox after welcome). Once per welcome; after that the backoff applies.
      restarted = true;
      connect();
      return;
    }
    failures++;
    setConn("offline");
    if (code === 1009) {
      // A frame was too big: retrying would repeat it. The next user action reconnects.
      showError(S.errorGeneric);
      return;
    }
    scheduleReconnect(code === 4429);
  }

  /** Exponential backoff with full jitter: 0.5 s base, 30 s cap; longer after 4429. */
  function scheduleReconnect(tooMany) {
    clearTimeout(reconnectTimer);
    const exp = 2 ** Math.min(failures - 1, 10);
    const delay = tooMany ? 5000 + Math.random() * Math.min(60000, 5000 * exp) : Math.random() * Math.min(30000, 500 * exp);
    reconnectTimer = setTimeout(connect, delay);
  }

  /** Drops the connection and opens a new one at once (stalled reply, missing pong). */
  function restart() {
    detachSocket();
    for (const m of outbox) m.sent = false;
    connect();
  }

  function rawSend(frame) {
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(frame));
    return true;
  }

  /** Sends a frame that needs a session; queued until the next successful hello if need be. */
  function send(frame) {
    if (ready && rawSend(frame)) return;
    if (frameQueue.length < 20) frameQueue.push(frame);
    connect();
  }

  /** The highest seq we hold in its final state, ignoring a reply still streaming (§9). */
  function lastSeq() {
    let max = 0;
    let streaming = Infinity;
    for (const m of bySeq.values()) {
      if (m.status === "streaming") streaming = Math.min(streaming, m.seq);
      else max = Math.max(max, m.seq);
    }
    return Math.max(0, Math.min(max, streaming - 1));
  }

  function sendHello() {
    const hello = {
      type: "hello",
      page: { url: location.href.slice(0, 2000), title: document.title.slice(0, 500), referrer: document.referrer.slice(0, 2000) },
    };
    if (navigator.language) hello.locale = navigator.language.slice(0, 35);
    if (session) Object.assign(hello, { session_id: session.session_id, token: session.token, last_seq: lastSeq() });
    if (opts.identity) hello.identity = opts.identity;
    rawSend(hello);
  }

  /** Every 5 s: application ping every 25 s, dead-connection and stalled-reply checks. */
  function tick() {
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    const now = Date.now();
    if (pingSentAt && now - pingSentAt > 10000) {
      socketClosed(1006); // no answer to the ping: treat as a dropped connection
      return;
    }
    if (ready && busy && now - lastActivityAt > 30000) {
      // §9: a reply that makes no progress may belong to a dead server process; resuming shows
      // it as interrupted (or picks up the deltas again).
      restart();
      return;
    }
    if (now - lastPingAt >= 25000 && rawSend({ type: "ping" })) {
      lastPingAt = now;
      pingSentAt = now;
    }
  }

  function setConn(state) {
    conn = state;
    if (!host) return;
    host.dataset.connection = state;
    ui.offline.hidden = !(state === "offline" && (attempted || browserOffline));
    ui.unavailable.hidden = state !== "refused";
    ui.end.disabled = state !== "open";
    updateComposer();
  }

  function onBrowserOffline() {
    browserOffline = true;
    if (ws) socketClosed(1006);
    else setConn(conn === "refused" ? conn : "offline");
  }

  function onBrowserOnline() {
    browserOffline = false;
    if (!ws && conn !== "refused" && (attempted || session)) connect(); // no need to wait the backoff out
    else setConn(conn);
  }

  // ---------------------------------------------------------------------------------------
  // 9. Server frames
  // ---------------------------------------------------------------------------------------

  function handleFrame(f) {
    switch (f.type) {
      case "welcome":
        return onWelcome(f);
      case "ack":
        return onAck(f);
      case "message": // another tab's visitor message, or what a person at the desk wrote (§4)
        if (f.role === "agent") showAgentTyping(null);
        upsertMessage(f);
        return renderQuickReplies();
      case "reply.start":
        return onReplyStart(f);
      case "reply.delta":
        return onReplyDelta(f);
      case "reply.end":
        return onReplyEnd(f);
      case "feedback.ack": {
        const m = findById(f.message_id);
        if (m) {
          m.feedback = f.rating;
          updateThumbs(m);
        }
        return;
      }
      case "rating.ack":
        return onRatingAck();
      case "ended":
        return showSurvey();
      case "handoff.status":
        return onHandoff(f);
      case "typing": // the person answering started or stopped typing
        return showAgentTyping(f.state === "start" ? f.name || "" : null);
      case "contact.ack":
        return onContactAck();
      case "error":
        return onError(f);
      default:
        return; // pong, and frame types added later (§14: ignore what you do not know)
    }
  }

  function onWelcome(f) {
    const resumed = !!session && session.session_id === f.session_id;
    if (f.token) {
      session = { session_id: f.session_id, token: f.token };
      saveSession(session);
    }
    if (!resumed) resetConversation(); // a new session: what we showed belonged to another one
    // A session waiting for (or with) a person is followed by its handoff.status.
    if (!resumed || handoff === "waiting" || handoff === "assigned") setHandoff("ai", "");
    ready = true;
    failures = 0;
    helloRetried = false;
    restarted = false;
    historyKnown = true;
    lastActivityAt = Date.now();

    const cfg = f.config || {};
    if (Number.isInteger(cfg.max_chars) && cfg.max_chars > 0) maxChars = cfg.max_chars;
    if (Array.isArray(cfg.quick_replies)) serverQuick = cfg.quick_replies.filter((q) => typeof q === "string");
    if (typeof cfg.greeting === "string") serverGreeting = cfg.greeting;
    if (["off", "optional", "required"].includes(cfg.ask_contact)) askContact = cfg.ask_contact;
    renderGreeting();

    if (f.history_truncated && !ui.log.querySelector(".truncated")) {
      const note = h("p", { class: "divider truncated", text: S.historyTruncated });
      ui.log.insertBefore(note, ui.greeting ? ui.greeting.nextSibling : ui.log.firstChild);
      extras.push(note);
    }
    // History entries replace our copy of that seq; a "streaming" one continues with deltas.
    for (const item of f.history || []) upsertMessage(item);
    if (f.status === "closed" && !survey && bySeq.size && !ui.log.querySelector(".ended")) {
      addNote(h("p", { class: "divider ended", text: S.chatEnded }));
    }
    busy = Array.from(bySeq.values()).some((m) => m.status === "streaming");
    if (askContact !== "off" && !contactKnown()) showContactForm(true);
    setConn("open");
    renderQuickReplies();
    scrollToBottom(true);

    const queued = frameQueue;
    frameQueue = [];
    for (const frame of queued) rawSend(frame);
    flushOutbox();
  }

  function onAck(f) {
    const m = byClient.get(f.client_id);
    if (!m) return;
    if (m.seq === null) setSeq(m, f.seq);
    m.id = f.message_id;
    setStatus(m, "complete");
    outbox = outbox.filter((x) => x !== m);
    if (f.asks_for_person) offerPerson();
    // The reply row exists once the message is committed (§9), so Stop already makes sense,
    // unless the ack is a duplicate whose reply we already have in final form.
    const reply = bySeq.get(f.seq + 1);
    if (!personAnswers && (!reply || reply.status === "streaming")) {
      busy = true;
      lastActivityAt = Date.now();
    }
    updateComposer();
  }

  function onReplyStart(f) {
    const m = bySeq.get(f.seq) || createMessage("assistant", f.seq);
    m.id = f.message_id;
    m.text = "";
    m.sources = null;
    setStatus(m, "streaming"); // with retry_of, the interrupted reply keeps its own bubble and note
    renderMessage(m);
    busy = true;
    lastActivityAt = Date.now();
    updateComposer();
    scrollToBottom();
  }

  function onReplyDelta(f) {
    let m = bySeq.get(f.seq);
    if (!m) {
      m = createMessage("assistant", f.seq);
      setStatus(m, "streaming");
    }
    m.text += typeof f.text === "string" ? f.text : "";
    lastActivityAt = Date.now();
    if (m.typing) renderMessage(m); // the first text replaces the typing indicator
    else scheduleRender(m);
  }

  function onReplyEnd(f) {
    const m = bySeq.get(f.seq) || createMessage("assistant", f.seq);
    if (f.message_id) m.id = f.message_id;
    m.sources = Array.isArray(f.sources) ? f.sources : null;
    setStatus(m, typeof f.status === "string" ? f.status : "complete");
    renderMessage(m);
    // No answer: every provider failed, or the local assistant found nothing to quote (its "I don't know").
    if (m.status === "failed" || (f.provider === "local" && m.status === "complete" && !(m.sources || []).length)) offerPerson();
    const replacementFollows = f.error === "provider_interrupted";
    if (!isOpen && !replacementFollows) {
      unread++;
      updateBadge();
    }
    busy = replacementFollows || Array.from(bySeq.values()).some((x) => x.status === "streaming");
    updateComposer();
    scrollToBottom();
    flushOutbox(); // a message queued while offline goes out once the reply is over
  }

  function onError(f) {
    const m = f.client_id ? byClient.get(f.client_id) : null;
    switch (f.code) {
      case "session_not_found":
        // The stored session is gone (or the token is wrong): start a new one on this socket.
        session = null;
        saveSession(null);
        resetConversation();
        frameQueue = frameQueue.filter((x) => x.type === "event");
        sendHello();
        return;
      case "restarting":
        // This server process is shutting down and did not store the message: it stays in the
        // outbox and goes out on a new connection, to another process, opened now.
        return socketClosed(1012);
      case "rate_limited":
        // The message was not stored: it stays in the outbox and goes out after the countdown.
        if (m) m.sent = false;
        if (contactForm) contactForm.sending = false; // a contact form may be sent again after it
        startRateLimit(f.retry_after);
        return;
      case "message_too_long":
      case "empty_message":
      case "reply_in_progress":
        if (m) {
          const reason = { message_too_long: fmt(S.tooLong, { n: codePoints(m.text), max: maxChars }), empty_message: S.empty, reply_in_progress: S.replyInProgress };
          failMessage(m, reason[f.code]);
        } else showError(S.errorGeneric);
        return;
      default:
        if (f.field === "email" && contactForm && !contactForm.done) return contactForm.fail();
        if (!ready && opts.identity && !helloRetried) {
          // A hello refused for its content (most likely a malformed identity): chat anonymously.
          helloRetried = true;
          opts.identity = null;
          sendHello();
          return;
        }
        if (m) failMessage(m, S.errorGeneric);
        showError(S.errorGeneric);
    }
  }

  // ---------------------------------------------------------------------------------------
  // 10. Messages
  // ---------------------------------------------------------------------------------------
  // A message is {seq, id, role, text, status, clientId, el, textEl, meta, ...}; el.__parley
  // points back to it.

  function createMessage(role, seq, text = "", clientId = null) {
    const m = { seq: null, id: null, role, text, status: "complete", clientId, feedback: null, sources: null };
    m.textEl = h("div", { class: "text", "data-testid": "parley-text" });
    m.meta = h("div", { class: "meta" });
    m.el = h(
      "div",
      { class: "msg " + role, "data-testid": "parley-message", "data-role": role },
      h("div", { class: "bubble" }, m.textEl),
      m.meta,
    );
    m.el.__parley = m;
    if (clientId) byClient.set(clientId, m);
    if (seq !== null) setSeq(m, seq);
    placeMessage(m);
    return m;
  }

  function setSeq(m, seq) {
    m.seq = seq;
    m.el.dataset.seq = String(seq);
    bySeq.set(seq, m);
  }

  function setStatus(m, status) {
    m.status = status;
    m.el.dataset.status = status;
    if (status === "streaming") m.el.setAttribute("aria-busy", "true");
    else m.el.removeAttribute("aria-busy"); // announce the reply once it is complete
  }

  /** Inserts the message element in seq order; messages without seq (pending) go last. */
  function placeMessage(m) {
    let before = null;
    if (m.seq !== null) {
      for (const child of ui.log.children) {
        const other = child.__parley;
        if (other && other !== m && (other.seq === null || other.seq > m.seq)) {
          before = child;
          break;
        }
      }
    }
    ui.log.insertBefore(m.el, before);
  }

  const findById = (id) => Array.from(bySeq.values()).find((m) => m.id === id) || null;

  /** A history entry or `message` frame: create the message or replace our copy (§16). */
  function upsertMessage(d) {
    if (!Number.isInteger(d.seq)) return;
    const role = d.role === "user" ? "user" : "assistant";
    let m = bySeq.get(d.seq);
    if (!m && role === "user" && d.client_id && byClient.has(d.client_id)) {
      // Our own message, stored although its ack never reached us: no need to resend it.
      m = byClient.get(d.client_id);
      outbox = outbox.filter((x) => x !== m);
      setSeq(m, d.seq);
    }
    if (!m) m = createMessage(role, d.seq, "", d.client_id || null);
    m.id = d.message_id || m.id;
    m.text = typeof d.text === "string" ? d.text : "";
    if (d.feedback && d.feedback.rating) m.feedback = d.feedback.rating;
    if (d.role === "agent") m.agent = (d.author && typeof d.author.name === "string" && d.author.name) || "";
    setStatus(m, typeof d.status === "string" ? d.status : "complete");
    renderMessage(m);
  }

  /** Renders a message's text, typing indicator, notes, sources and feedback buttons. */
  function renderMessage(m) {
    const wantTyping = m.role === "assistant" && m.status === "streaming" && !m.text;
    if (wantTyping && !m.typing) {
      m.typing = h("div", { class: "typing", "data-testid": "parley-typing", role: "img", "aria-label": S.typing }, h("i"), h("i"), h("i"));
      m.textEl.before(m.typing);
    } else if (!wantTyping && m.typing) {
      m.typing.remove();
      m.typing = null;
    }
    if (m.role === "user") m.textEl.textContent = m.text;
    else {
      dirty.delete(m);
      renderMarkdown(m.text, m.textEl);
    }
    renderMeta(m);
    scrollToBottom();
  }

  /** Re-renders streaming Markdown at most once per animation frame. */
  function scheduleRender(m) {
    dirty.add(m);
    if (renderFrame) return;
    renderFrame = requestAnimationFrame(() => {
      renderFrame = 0;
      for (const x of dirty) renderMarkdown(x.text, x.textEl);
      dirty.clear();
      scrollToBottom();
    });
  }

  function renderMeta(m) {
    // Keep an open feedback form (and what is typed in it) across re-renders.
    const key = [m.status, m.id, m.sources ? m.sources.length : 0, m.failReason || ""].join("|");
    if (m.metaKey === key) return updateThumbs(m);
    m.metaKey = key;
    m.meta.textContent = "";
    m.thumbs = null;
    if (m.role === "user") {
      if (m.status === "failed") {
        m.meta.append(
          h("p", { class: "note err", role: "alert" }, S.notSent + " " + (m.failReason || ""), h("button", { type: "button", class: "linkbtn", onclick: () => retryMessage(m) }, S.retry)),
        );
      }
      return;
    }
    const titles = (m.sources || []).map((s) => s && s.title).filter((t) => typeof t === "string" && t);
    if (titles.length) m.meta.append(h("p", { class: "sources", "data-testid": "parley-sources" }, S.sources + ": " + titles.join(" \u00b7 ")));
    const note = { interrupted: S.interrupted, failed: S.failed, stopped: S.stopped }[m.status];
    if (note) m.meta.append(h("p", { class: "note", text: note }));
    if (typeof m.agent === "string") {
      // A person wrote it: their name (also what screen readers hear first), and no thumbs
      // (feedback rates the assistant's answers).
      m.el.style.setProperty("--who-assistant", JSON.stringify((m.agent || S.assistant) + ": "));
      return m.meta.append(h("p", { class: "note", "data-testid": "parley-agent-name", text: m.agent }));
    }
    if (m.status === "complete" && m.id) m.meta.append(thumbs(m));
  }

  /** A note in the log (e.g. "chat ended") that belongs to the current session. */
  function addNote(el) {
    ui.log.append(el);
    extras.push(el);
    scrollToBottom(true);
  }

  /** Forgets the messages of the previous session; unsent messages stay for the new one. */
  function resetConversation() {
    for (const m of bySeq.values()) if (!outbox.includes(m)) m.el.remove();
    for (const [id, m] of byClient) if (!outbox.includes(m)) byClient.delete(id);
    for (const m of outbox) {
      m.seq = null;
      delete m.el.dataset.seq;
    }
    bySeq.clear();
    dirty.clear();
    ui.offer.hidden = true;
    for (const el of extras) el.remove();
    extras = [];
    survey = null;
    busy = false;
    updateComposer();
  }

  function renderGreeting() {
    const text = opts.greeting !== null ? opts.greeting : serverGreeting;
    if (!text) {
      if (ui.greeting) ui.greeting.remove();
      ui.greeting = null;
      return;
    }
    if (!ui.greeting) {
      // Not a stored message (§4): its own test id, so message counts stay protocol messages.
      ui.greetingText = h("div", { class: "text" });
      ui.greeting = h("div", { class: "msg assistant", "data-testid": "parley-greeting" }, h("div", { class: "bubble" }, ui.greetingText));
      ui.log.prepend(ui.greeting);
    }
    renderMarkdown(text, ui.greetingText);
  }

  /** Quick-reply chips, shown until the visitor's first message. */
  function renderQuickReplies() {
    const list = opts.quickReplies || serverQuick;
    const visitorWrote = outbox.length || Array.from(bySeq.values()).some((m) => m.role === "user");
    const show = historyKnown && !visitorWrote && list.length > 0 && !gated();
    ui.chips.hidden = !show;
    if (!show) return;
    if (ui.chips.dataset.for === JSON.stringify(list)) return;
    ui.chips.dataset.for = JSON.stringify(list);
    ui.chips.textContent = "";
    for (const text of list) {
      ui.chips.append(
        h("button", {
          type: "button",
          class: "chip",
          "data-testid": "parley-quick-reply",
          text,
          onclick: () => {
            if (submit(text)) send({ type: "event", name: "quick_reply", data: { text: text.slice(0, 500) } });
          },
        }),
      );
    }
  }

  const isAtBottom = () => ui.scroller.scrollHeight - ui.scroller.scrollTop - ui.scroller.clientHeight < 60;

  /** Keeps the newest message in view, unless the visitor scrolled up to read. */
  function scrollToBottom(force) {
    if (force) stick = true;
    if (stick && ui.scroller) ui.scroller.scrollTop = ui.scroller.scrollHeight;
  }

  // ---------------------------------------------------------------------------------------
  // 11. Composer, outbox, rate limit, banners
  // ---------------------------------------------------------------------------------------

  /** Sends the composer's text (or `text`). Returns whether a message was queued. */
  function submit(text) {
    const fromComposer = text === undefined;
    const value = fromComposer ? ui.input.value : text;
    if (conn === "refused" || gated() || busy || Date.now() < rateUntil || !value.trim()) return false;
    if (codePoints(value) > maxChars) {
      updateCounter(true);
      return false;
    }
    if (fromComposer) {
      ui.input.value = "";
      onInput();
    }
    ui.offer.hidden = true; // a new question: the offer was about the last one
    if (handoff === "ended") setHandoff("ai", "");
    const m = createMessage("user", null, value, uuid());
    setStatus(m, "pending");
    renderMessage(m);
    outbox.push(m);
    renderQuickReplies();
    scrollToBottom(true);
    if (ready) flushOutbox();
    else connect();
    return true;
  }

  /**
   * Sends the oldest unsent outbox message, one at a time: the next goes out after the previous
   * one's reply ended, since the server refuses a message while a reply streams (§5).
   */
  function flushOutbox() {
    if (!ready || busy || gated() || Date.now() < rateUntil || outbox.some((m) => m.sent)) return;
    const m = outbox[0];
    if (!m) return;
    m.sent = true;
    rawSend({ type: "message", text: m.text, client_id: m.clientId });
  }

  /** Marks a visitor message as refused, with the reason and a Retry button. */
  function failMessage(m, reason) {
    outbox = outbox.filter((x) => x !== m);
    m.sent = false;
    m.failReason = reason;
    setStatus(m, "failed");
    renderMeta(m);
  }

  function retryMessage(m) {
    if (outbox.includes(m)) return;
    m.failReason = "";
    setStatus(m, "pending");
    renderMeta(m);
    outbox.push(m); // same client_id: a refused message was not stored (§8)
    if (ready) flushOutbox();
    else connect();
  }

  function stopReply() {
    if (ready) rawSend({ type: "stop" });
  }

  function onInput() {
    ui.input.style.height = "auto";
    ui.input.style.height = Math.min(ui.input.scrollHeight + 2, 120) + "px";
    updateCounter(false);
    visitorTyping(withPerson() && !!ui.input.value.trim()); // a sent message clears the box: stop
  }

  function onInputKey(e) {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      submit();
    }
  }

  /** Shows the counter within 100 characters of the limit; `tried` after a refused send. */
  function updateCounter(tried) {
    const n = codePoints(ui.input.value);
    const over = n > maxChars;
    ui.counter.hidden = n < maxChars - 100;
    ui.counter.classList.toggle("over", over);
    ui.counter.textContent = over ? fmt(S.tooLong, { n, max: maxChars }) : `${n} / ${maxChars}`;
    ui.counter.setAttribute("role", over && tried ? "alert" : "status");
    ui.input.setAttribute("aria-invalid", String(over));
    updateComposer();
  }

  function updateComposer() {
    if (!host) return;
    const refused = conn === "refused" || gated();
    ui.stop.hidden = !busy;
    ui.send.hidden = busy;
    ui.input.disabled = refused;
    ui.send.disabled = refused || Date.now() < rateUntil || codePoints(ui.input.value) > maxChars;
  }

  /** Shows the rate-limit banner with a live countdown; sending is disabled until it ends. */
  function startRateLimit(seconds) {
    const s = Number(seconds);
    rateUntil = Math.max(rateUntil, Date.now() + (Number.isFinite(s) && s > 0 ? s : 1) * 1000);
    countdown();
  }

  function countdown() {
    clearTimeout(rateTimer);
    const left = rateUntil - Date.now();
    if (left <= 0) {
      rateUntil = 0;
      hideError();
      updateComposer();
      flushOutbox();
      return;
    }
    showError(fmt(S.rateLimited, { s: Math.ceil(left / 1000) }), true);
    updateComposer();
    rateTimer = setTimeout(countdown, left % 1000 || 1000); // tick when the shown number changes
  }

  function showError(text, sticky) {
    clearTimeout(errorTimer);
    ui.errorText.textContent = text;
    ui.error.hidden = false;
    if (!sticky) errorTimer = setTimeout(hideError, 8000);
  }

  function hideError() {
    clearTimeout(errorTimer);
    if (Date.now() < rateUntil) return; // the countdown stays until it ends
    ui.error.hidden = true;
  }

  // ---------------------------------------------------------------------------------------
  // 12. Feedback, survey, events
  // ---------------------------------------------------------------------------------------

  function thumbs(m) {
    const button = (rating, testid, label) =>
      h("button", { type: "button", class: "thumb", "data-testid": testid, "aria-label": label, title: label, "aria-pressed": "false", onclick: () => giveFeedback(m, rating) }, icon(rating, 16));
    m.thumbs = { up: button("up", "parley-thumb-up", S.thumbUp), down: button("down", "parley-thumb-down", S.thumbDown) };
    updateThumbs(m);
    return h("div", { class: "thumbs" }, m.thumbs.up, m.thumbs.down);
  }

  function updateThumbs(m) {
    if (!m.thumbs) return;
    m.thumbs.up.setAttribute("aria-pressed", String(m.feedback === "up"));
    m.thumbs.down.setAttribute("aria-pressed", String(m.feedback === "down"));
  }

  function giveFeedback(m, rating) {
    m.feedback = rating;
    updateThumbs(m); // optimistic; feedback.ack confirms (and updates the other tabs)
    send({ type: "feedback", message_id: m.id, rating });
    if (m.fbForm) m.fbForm.remove();
    m.fbForm = null;
    if (rating !== "down") return;
    // After a thumbs-down, offer an optional comment; submitting sends the feedback again with it.
    const comment = h("textarea", { rows: 2, maxlength: 2000, "data-testid": "parley-feedback-comment", "aria-label": S.feedbackComment, placeholder: S.feedbackComment });
    const form = h(
      "div",
      { class: "fb" },
      comment,
      h("button", {
        type: "button",
        class: "primary",
        "data-testid": "parley-feedback-submit",
        text: S.feedbackSubmit,
        onclick: () => {
          const text = comment.value.trim();
          if (text) send({ type: "feedback", message_id: m.id, rating: "down", comment: text.slice(0, 2000) });
          form.replaceWith(h("p", { class: "note", role: "status", text: S.feedbackThanks }));
          m.fbForm = null;
        },
      }),
    );
    m.fbForm = form;
    m.meta.append(form);
    comment.focus();
    scrollToBottom();
  }

  function endChat() {
    if (ready) rawSend({ type: "end" });
  }

  /** The end-of-chat survey, shown on `ended`: 1–5 stars, resolved yes/no, comment. */
  function showSurvey() {
    if (survey && !survey.done && survey.el.isConnected) {
      scrollToBottom(true);
      return;
    }
    const state = { score: 0, resolved: null, done: false };
    const paint = () => {
      stars.forEach((b, i) => {
        b.classList.toggle("on", i < state.score);
        b.setAttribute("aria-pressed", String(i + 1 === state.score));
      });
      yes.setAttribute("aria-pressed", String(state.resolved === true));
      no.setAttribute("aria-pressed", String(state.resolved === false));
      submitBtn.disabled = !state.score;
    };
    const stars = [1, 2, 3, 4, 5].map((n) =>
      h("button", { type: "button", class: "star", "data-testid": "parley-star", "data-score": n, "aria-label": fmt(S.star, { n }), onclick: () => ((state.score = n), paint()) }, icon("star", 26)),
    );
    const yes = h("button", { type: "button", class: "pill", "data-testid": "parley-resolved-yes", text: S.yes, onclick: () => ((state.resolved = true), paint()) });
    const no = h("button", { type: "button", class: "pill", "data-testid": "parley-resolved-no", text: S.no, onclick: () => ((state.resolved = false), paint()) });
    const comment = h("textarea", { rows: 2, maxlength: 2000, "data-testid": "parley-rating-comment", "aria-label": S.ratingComment, placeholder: S.ratingComment });
    const submitBtn = h("button", {
      type: "button",
      class: "primary",
      "data-testid": "parley-rating-submit",
      text: S.submit,
      onclick: () => {
        const frame = { type: "rating", score: state.score };
        if (state.resolved !== null) frame.resolved = state.resolved;
        const text = comment.value.trim();
        if (text) frame.comment = text.slice(0, 2000);
        submitBtn.disabled = true; // until rating.ack
        send(frame);
      },
    });
    const title = h("p", { class: "rt", text: S.rateTitle });
    state.el = h(
      "div",
      { class: "rating", role: "group", "aria-label": S.rateTitle, "data-testid": "parley-rating" },
      title,
      h("div", { class: "stars" }, ...stars),
      h("p", { text: S.resolvedQuestion }),
      h("div", { class: "yn" }, yes, no),
      comment,
      submitBtn,
    );
    paint();
    survey = state;
    addNote(state.el);
  }

  function onRatingAck() {
    if (!survey || survey.done) return;
    survey.done = true;
    const hadFocus = survey.el.contains(shadow.activeElement);
    const thanks = h("p", { class: "rt", role: "status", tabindex: "-1", "data-testid": "parley-rating-thanks", text: S.thanks });
    survey.el.replaceChildren(thanks);
    if (hadFocus) thanks.focus(); // don't drop focus to <body>, outside the panel
  }

  /** Link clicks in replies are reported as `link_click` events; the link opens as usual. */
  function onLogClick(e) {
    const a = e.target.closest && e.target.closest("a[href]");
    if (!a) return;
    const msg = a.closest("[data-testid=parley-message]");
    const m = msg && msg.__parley;
    const data = { url: a.href.slice(0, 2000) };
    if (m && m.id) data.message_id = m.id;
    send({ type: "event", name: "link_click", data });
  }

  // ---------------------------------------------------------------------------------------
  // 13. Human handoff
  // ---------------------------------------------------------------------------------------

  const withPerson = () => handoff === "waiting" || handoff === "assigned";
  const nameOf = (name) => (typeof name === "string" && name.trim() ? name : S.someone);
  /** We know how to reach the visitor: the contact form was sent or skipped, they chatted, or signed in. */
  const contactKnown = () => !!((session && session.contact) || (opts.identity && opts.identity.email) || Array.from(bySeq.values()).some((m) => m.role === "user"));
  /** WIDGET_ASK_CONTACT=required and no contact yet: no chatting (the outbox waits). */
  const gated = () => askContact === "required" && !contactKnown();

  function toggleMenu(show, back) {
    ui.menu.hidden = !show;
    ui.menuBtn.setAttribute("aria-expanded", String(show));
    if (show) ui.menu.firstChild.focus();
    else if (back) ui.menuBtn.focus();
  }

  /** Menu keys: ArrowDown on the button opens it; arrows move; Esc closes it (not the panel); Tab leaves it. */
  function onMenuKey(e) {
    if (ui.menu.hidden) {
      if (e.key === "ArrowDown" && e.target === ui.menuBtn) {
        e.preventDefault();
        toggleMenu(true);
      }
      return;
    }
    const items = Array.from(ui.menu.children);
    const i = items.indexOf(shadow.activeElement);
    if (e.key === "Escape" || e.key === "Tab") {
      if (e.key === "Escape") {
        e.preventDefault();
        e.stopPropagation();
      }
      toggleMenu(false, true);
    } else if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      items[(i + (e.key === "ArrowDown" ? 1 : items.length - 1)) % items.length].focus();
    }
  }

  /** "Talk to a person" (menu or chip): the server answers every tab with handoff.status. */
  function askPerson() {
    if (ui.offer.contains(shadow.activeElement)) ui.input.focus(); // the chip goes away
    ui.offer.hidden = true;
    send({ type: "handoff" });
  }

  /** The "Talk to a person" chip, unless a person is already coming. */
  function offerPerson() {
    if (withPerson()) return;
    ui.offer.hidden = false;
    scrollToBottom();
  }

  function onHandoff(f) {
    const state = ["waiting", "assigned", "unavailable", "ended"].includes(f.state) ? f.state : "ai";
    let text = "";
    if (state === "waiting") {
      text = S.waiting;
      if (Number.isInteger(f.position) && f.position > 0) text += " " + fmt(S.position, { n: f.position });
      if (f.wait_estimate_s > 0) text += " " + fmt(S.estimate, { m: Math.ceil(f.wait_estimate_s / 60) });
    } else if (state === "assigned") text = fmt(S.assigned, { name: nameOf(f.agent && f.agent.name) });
    else if (state === "ended") text = S.handoffEnded;
    setHandoff(state, text);
    if (state === "unavailable") showContactForm(false); // the AI keeps answering meanwhile
  }

  /** Shows a handoff state: the status line (role=status), data-handoff, what the composer does. */
  function setHandoff(state, text) {
    handoff = state;
    host.dataset.handoff = state;
    personAnswers = state === "assigned";
    if (personAnswers) busy = false; // a reply being stopped by the takeover ends with reply.end
    else showAgentTyping(null);
    ui.handoff.textContent = text;
    ui.handoff.hidden = !text;
    ui.offer.hidden = true;
    visitorTyping(withPerson() && !!ui.input.value.trim());
    updateComposer();
  }

  /** "<name> is typing…" (null: not typing); it ends by itself if the `stop` is lost. */
  function showAgentTyping(name) {
    clearTimeout(agentTypingTimer);
    const text = name === null ? "" : fmt(S.agentTyping, { name: nameOf(name) });
    if (ui.agentTyping.textContent !== text) ui.agentTyping.textContent = text;
    if (!text) return;
    agentTypingTimer = setTimeout(showAgentTyping, 30000, null);
    scrollToBottom();
  }

  /** Tells the person whether the visitor is typing: start on a keystroke, stop after 3 s idle or on send. */
  function visitorTyping(on) {
    clearTimeout(typingTimer);
    if (on && !typingOn && ready && Date.now() - typingAt >= 4000) {
      // At most one start (and one stop) per 4 s: within the server's 30 typing frames a minute.
      typingAt = Date.now();
      typingOn = rawSend({ type: "typing", state: "start" });
    } else if (!on && typingOn) {
      typingOn = false;
      rawSend({ type: "typing", state: "stop" });
    }
    if (typingOn) typingTimer = setTimeout(visitorTyping, 3000, false);
  }

  /** The contact form: before the chat (WIDGET_ASK_CONTACT) or, `offline`, when nobody is available. */
  function showContactForm(prechat) {
    if (contactForm && !contactForm.done && contactForm.el.isConnected) return;
    const email = h("input", {
      type: "email",
      maxlength: 254,
      autocomplete: "email",
      "aria-required": "true",
      "aria-label": S.email,
      "aria-describedby": "parley-email-error",
      placeholder: S.email,
      "data-testid": "parley-contact-email",
      value: opts.identity && opts.identity.email,
    });
    const name = h("input", { type: "text", maxlength: 255, autocomplete: "name", "aria-label": S.name, placeholder: S.name, "data-testid": "parley-contact-name" });
    const message = prechat ? null : h("textarea", { rows: 2, maxlength: 2000, "aria-label": S.contactMessage, placeholder: S.contactMessage, "data-testid": "parley-contact-message" });
    const error = h("p", { class: "note err", id: "parley-email-error", hidden: true, text: S.badEmail });
    const submitBtn = h("button", { type: "submit", class: "primary", "data-testid": "parley-contact-submit", text: S.submit });
    const intro = prechat ? S.askContact : S.noAgent;
    const state = { prechat, done: false, email };
    state.fail = () => {
      email.setAttribute("aria-invalid", "true");
      error.hidden = false;
      state.sending = false;
      email.focus();
    };
    const onsubmit = (e) => {
      e.preventDefault();
      if (state.sending) return; // until contact.ack (not disabled: the button keeps the focus)
      const value = email.value.trim();
      if (value.length > 254 || !/^[^\s@]+@[^\s@.]+(\.[^\s@.]+)+$/.test(value)) return state.fail();
      email.setAttribute("aria-invalid", "false");
      error.hidden = true;
      const frame = { type: "contact", email: value };
      if (name.value.trim()) frame.name = name.value.trim().slice(0, 255);
      if (message && message.value.trim()) frame.message = message.value.trim().slice(0, 2000);
      state.sending = true;
      send(frame);
    };
    const skip = prechat && askContact === "optional" && h("button", { type: "button", class: "pill", "data-testid": "parley-contact-skip", text: S.skip, onclick: () => contactDone(null) });
    state.el = h(
      "form",
      { class: "rating", novalidate: true, "aria-label": intro, "data-testid": prechat ? "parley-contact-form" : "parley-offline-form", onsubmit },
      h("p", { class: "rt", text: intro }),
      email,
      error,
      name,
      message,
      h("div", { class: "yn" }, submitBtn, skip),
    );
    contactForm = state;
    addNote(state.el);
    if (isOpen) email.focus();
  }

  function onContactAck() {
    if (contactForm && !contactForm.done) contactDone(contactForm.prechat ? S.contactSaved : S.contactThanks);
  }

  /** The form was sent (`thanks` replaces it) or skipped: remember it for this session, free the composer. */
  function contactDone(thanks) {
    const state = contactForm;
    state.done = true;
    if (session) {
      session.contact = 1;
      saveSession(session);
    }
    const hadFocus = state.el.contains(shadow.activeElement);
    const note = thanks && h("p", { class: "note", role: "status", tabindex: "-1", "data-testid": "parley-contact-thanks", text: thanks });
    if (note) {
      state.el.replaceWith(note);
      extras.push(note);
    } else state.el.remove();
    updateComposer();
    renderQuickReplies();
    flushOutbox();
    if (hadFocus) (state.prechat || !note ? ui.input : note).focus(); // keep focus in the panel
  }

  // ---------------------------------------------------------------------------------------
  // 14. Open / close, focus, badge
  // ---------------------------------------------------------------------------------------

  let openWhenReady = false;

  function open() {
    if (!start()) {
      openWhenReady = !destroyed; // called before <body> exists: open once the widget is built
      return;
    }
    if (isOpen) return;
    isOpen = true;
    host.dataset.state = "open";
    ui.root.classList.add("open");
    ui.panel.hidden = false;
    ui.launcher.setAttribute("aria-expanded", "true");
    unread = 0;
    updateBadge();
    connect(); // lazy: the first open makes the first connection
    send({ type: "event", name: "widget_open" });
    scrollToBottom(true);
    (contactForm && contactForm.prechat && !contactForm.done ? contactForm.email : ui.input.disabled ? ui.close : ui.input).focus();
  }

  function close() {
    openWhenReady = false;
    if (!host || !isOpen) return;
    const hadFocus = ui.panel.contains(shadow.activeElement);
    isOpen = false;
    host.dataset.state = "closed";
    ui.root.classList.remove("open");
    ui.panel.hidden = true;
    ui.launcher.setAttribute("aria-expanded", "false");
    updateBadge();
    if (hadFocus) ui.launcher.focus(); // give focus back where the visitor opened the chat
  }

  function toggle() {
    if (isOpen) close();
    else open();
  }

  function updateBadge() {
    ui.badge.hidden = unread === 0;
    ui.badge.textContent = unread > 99 ? "99+" : String(unread);
    const label = isOpen ? S.closeChat : S.openChat;
    ui.launcher.setAttribute("aria-label", unread ? `${label} (${fmt(S.unread, { n: unread })})` : label);
  }

  /** Esc closes the panel; Tab and Shift+Tab cycle inside it. */
  function onPanelKey(e) {
    if (e.key === "Escape") {
      e.preventDefault();
      e.stopPropagation();
      close();
      ui.launcher.focus();
      return;
    }
    if (e.key !== "Tab") return;
    const focusable = Array.from(ui.panel.querySelectorAll("button, textarea, input, a[href], [tabindex]:not([tabindex='-1'])")).filter(
      (el) => !el.disabled && el.getClientRects().length > 0,
    );
    if (!focusable.length) return;
    const first = focusable[0];
    const last = focusable[focusable.length - 1];
    const active = shadow.activeElement;
    if (e.shiftKey && (active === first || !ui.panel.contains(active))) {
      e.preventDefault();
      last.focus();
    } else if (!e.shiftKey && (active === last || !ui.panel.contains(active))) {
      e.preventDefault();
      first.focus();
    }
  }

  // ---------------------------------------------------------------------------------------
  // 15. Start-up and public API
  // ---------------------------------------------------------------------------------------

  /** Builds the widget once. Returns false if it cannot (destroyed, or no <body> yet). */
  function start() {
    if (destroyed) return false;
    if (host) return true;
    if (!document.body) return false;
    opts = readOptions();
    S = opts.strings;
    session = loadSession();
    historyKnown = !session; // a returning visitor's history comes with the first welcome
    build();
    window.addEventListener("online", onBrowserOnline);
    window.addEventListener("offline", onBrowserOffline);
    tickTimer = setInterval(tick, 5000);
    // A returning visitor connects now (streaming replies, unread badge); others on first open.
    if (session) connect();
    if (opts.openOnLoad || openWhenReady) open();
    return true;
  }

  function destroy() {
    destroyed = true;
    clearTimeout(reconnectTimer);
    clearTimeout(rateTimer);
    clearTimeout(errorTimer);
    clearTimeout(typingTimer);
    clearTimeout(agentTypingTimer);
    clearInterval(tickTimer);
    if (renderFrame) cancelAnimationFrame(renderFrame);
    detachSocket();
    window.removeEventListener("online", onBrowserOnline);
    window.removeEventListener("offline", onBrowserOffline);
    if (host) host.remove();
    host = null;
    if (window.Parley === api) delete window.Parley; // the script may be loaded again later
  }

  /** Report a visitor action from the page (e.g. "escalate" from a "Talk to a person" button). */
  function track(name, data) {
    if (typeof name !== "string" || !name || name.length > 64) throw new TypeError("Parley.track(name): 1-64 characters");
    if (data !== undefined && (data === null || typeof data !== "object" || Array.isArray(data))) {
      throw new TypeError("Parley.track(name, data): data must be an object");
    }
    send(data === undefined ? { type: "event", name } : { type: "event", name, data });
  }

  const api = Object.freeze({ open, close, toggle, destroy, track });
  window.Parley = api;

  // Never compete with the host page's own start-up: wait for the DOM, then for an idle moment.
  const later = () => {
    if (window.requestIdleCallback) requestIdleCallback(start, { timeout: 2000 });
    else setTimeout(start, 1);
  };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", later, { once: true });
  else later();
})();
