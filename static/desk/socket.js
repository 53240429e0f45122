/*
 * The desk's /ws/desk/ connection (window.ParleyDesk.connect): reconnects with exponential
 * backoff (1 s to 30 s, jittered) and at once when the browser comes back online; pings every
 * 25 s, which also keeps the agent's presence fresh (DESK_PRESENCE_TTL_S is 90 s), and drops a
 * connection that has said nothing for 60 s. Gives up on 4401 (signed out) and 4403 (not an
 * agent, or another origin).
 */
(() => {
  "use strict";

  const desk = (window.ParleyDesk = window.ParleyDesk || {});
  const PING_MS = 25000;
  const SILENT_MS = 60000;
  const STABLE_MS = 10000;

  /**
   * handlers: open(reconnected), frame(frame), status(state, text, delaySeconds?) with state
   * connecting | live | reconnecting | off, closed(code). Returns {send(frame) → bool, isOpen()}.
   */
  desk.connect = function connect(path, handlers) {
    let socket = null;
    let attempts = 0;
    let everOpened = false;
    let retryTimer = null;
    let pingTimer = null;
    let stableTimer = null;
    let heardAt = 0;
    let stopped = false;

    function open() {
      clearTimeout(retryTimer);
      retryTimer = null;
      const scheme = location.protocol === "https:" ? "wss:" : "ws:";
      handlers.status("connecting", everOpened ? "Reconnecting…" : "Connecting…");
      try {
        socket = new WebSocket(scheme + "//" + location.host + path);
      } catch (error) {
        retry();
        return;
      }
      const current = socket;
      current.addEventListener("open", () => {
        if (current !== socket) return;
        const reconnected = everOpened;
        everOpened = true;
        // The backoff resets only once the connection lasted: a server that accepts and
        // drops at once is not hammered.
        clearTimeout(stableTimer);
        stableTimer = setTimeout(() => (attempts = 0), STABLE_MS);
        heardAt = Date.now();
        handlers.status("live", "Connected");
        clearInterval(pingTimer);
        pingTimer = setInterval(keepAlive, PING_MS);
        handlers.open(reconnected);
      });
      current.addEventListener("message", (event) => {
        if (current !== socket) return;
        heardAt = Date.now();
        let frame;
        try {
          frame = JSON.parse(event.data);
        } catch (error) {
          return;
        }
        if (frame && typeof frame.type === "string") handlers.frame(frame);
      });
      current.addEventListener("close", (event) => {
        if (current !== socket) return;
        socket = null;
        clearInterval(pingTimer);
        clearTimeout(stableTimer);
        handlers.closed(event.code);
        if (event.code === 4401) {
          stopped = true;
          handlers.status("off", "Signed out: sign in again");
        } else if (event.code === 4403) {
          stopped = true;
          handlers.status("off", "Refused (4403): agents only, from this site's own address");
        } else {
          retry();
        }
      });
    }

    function keepAlive() {
      if (!socket || socket.readyState !== WebSocket.OPEN) return;
      if (Date.now() - heardAt > SILENT_MS) {
        socket.close(4000, "silent");
        return;
      }
      send({ type: "ping" });
    }

    function retry() {
      if (stopped || retryTimer) return;
      attempts += 1;
      const delay = Math.min(30000, 1000 * Math.pow(2, attempts - 1)) * (0.75 + Math.random() * 0.5);
      const seconds = Math.max(1, Math.round(delay / 1000));
      handlers.status("reconnecting", "Connection lost: reconnecting in " + seconds + " s…", seconds);
      retryTimer = setTimeout(() => {
        retryTimer = null;
        open();
      }, delay);
    }

    function send(frame) {
      if (!socket || socket.readyState !== WebSocket.OPEN) return false;
      socket.send(JSON.stringify(frame));
      return true;
    }

    window.addEventListener("online", () => {
      if (!stopped && !socket) {
        attempts = 0;
        open();
      }
    });
    window.addEventListener("offline", () => {
      if (socket) socket.close(4000, "offline");
    });

    open();
    return {
      send,
      isOpen: () => Boolean(socket && socket.readyState === WebSocket.OPEN),
      reconnectNow() {
        if (!stopped && !socket) open();
      },
    };
  };
})();
