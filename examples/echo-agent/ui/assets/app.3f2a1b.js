// A content-hashed asset (the name changes with the content), so it can be cached for good.
window.echoFormat = function (status, body) {
  let text = body;
  try { text = JSON.stringify(JSON.parse(body), null, 2); } catch (e) { /* not JSON: as is */ }
  return "HTTP " + status + "\n" + text;
};
