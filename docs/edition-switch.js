// A link in the menu bar to the same page in the book's other edition: the English book is built at the root,
// the Korean one (scripts/book, from po/ko.po) under ko/.
(() => {
  const korean = document.documentElement.lang === "ko";
  const root = new URL(path_to_root || "./", window.location.href);
  const page = window.location.href.slice(root.href.length) || "index.html";
  const other = korean ? new URL("../" + page, root) : new URL("ko/" + page, root);
  const link = document.createElement("a");
  link.href = other.href;
  link.textContent = korean ? "English" : "한국어";
  link.title = korean ? "Read this page in English" : "이 페이지를 한국어로 읽기";
  link.className = "edition-switch";
  document.querySelector(".right-buttons")?.prepend(link);
})();
