package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// browser is one headless Chromium tab on Roundcube.
type browser struct {
	r   *runner
	ctx context.Context
}

// browse is the flow. Actions go through Roundcube's own client code: real
// typing and clicks where the elastic skin shows the control (login form,
// message rows, the search box, the compose form), rcmail.command(...) —
// what the toolbar buttons call — for the toolbar and menu actions.
func (r *runner) browse(ctx context.Context) error {
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath("/usr/bin/chromium"),
		chromedp.NoSandbox, // root
		chromedp.WindowSize(1400, 900),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(filepath.Join(r.out, "chromium-profile")),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	bctx, cancelTab := chromedp.NewContext(actx)
	defer cancelTab()
	// Close the browser cleanly (Cancel waits for it), then the
	// allocator kills what is left.
	defer chromedp.Cancel(bctx)
	b := &browser{r: r, ctx: bctx}
	r.logf("starting headless chromium")
	if err := chromedp.Do(bctx); err != nil {
		return fmt.Errorf("chromium: %w", err)
	}
	err := b.flow()
	if err != nil {
		b.shot("failure")
	}
	return err
}

func (b *browser) run(what string, actions ...chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// eval evaluates a JavaScript expression into out (JSON-decoded; nil:
// thrown away).
func (b *browser) eval(expr string, out any) error {
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[string]("JSON.stringify(("+expr+")) ?? 'null'"))
	if err != nil || out == nil {
		return err
	}
	return json.Unmarshal([]byte(raw), out)
}

// waitJS waits until the expression is true (errors while a page loads
// count as false).
func (b *browser) waitJS(what, expr string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		var ok bool
		err := b.eval("!!("+expr+")", &ok)
		if err == nil && ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %v (%s; last error %v)", what, d, expr, err)
		}
		if b.ctx.Err() != nil {
			return b.ctx.Err()
		}
		time.Sleep(150 * time.Millisecond)
	}
}

// shot saves a PNG of the viewport as NN-name.png.
func (b *browser) shot(name string) {
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	buf, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.r.logf("screenshot %s: %v", name, err)
		return
	}
	b.r.shots++
	p := filepath.Join(b.r.out, fmt.Sprintf("%02d-%s.png", b.r.shots, name))
	if err := os.WriteFile(p, buf, 0o644); err != nil {
		b.r.logf("screenshot %s: %v", name, err)
		return
	}
	b.r.logf("screenshot %s", filepath.Base(p))
}

// listReady: the mail list of the current page is loaded and idle. The
// counter __lu counts Roundcube's listupdate events from markList on.
const listReady = `window.rcmail && rcmail.env.task == 'mail' && rcmail.message_list && !rcmail.busy && window.__lu > 0`

// markList installs the listupdate counter (again after a page load) and
// resets it, so that listReady waits for the next list.
func (b *browser) markList() error {
	return b.eval(`(function(){ if (!window.__luHooked) { window.__luHooked = true; rcmail.addEventListener('listupdate', function(){ window.__lu++; }); } window.__lu = 0; return true; })()`, nil)
}

// row is what the page shows of one message row.
type row struct {
	UID     string `json:"uid"`
	Subject string `json:"subject"`
	Depth   int    `json:"depth"`
	Parent  string `json:"parent"`
	Flagged bool   `json:"flagged"`
	ID      string `json:"id"`
}

func (b *browser) rows() ([]row, error) {
	var rs []row
	err := b.eval(`Array.from(document.querySelectorAll('#messagelist tbody tr')).map(function(tr){
		var uid = tr.uid || '', r = rcmail.message_list.rows[uid] || {};
		var s = tr.querySelector('span.subject a, td.subject a');
		return {uid: String(uid), subject: s ? s.innerText.trim() : '', depth: r.depth || 0,
			parent: r.parent_uid ? String(r.parent_uid) : '', flagged: !!r.flagged, id: tr.id};
	})`, &rs)
	return rs, err
}

func subjects(rs []row) []string {
	var s []string
	for _, r := range rs {
		s = append(s, r.Subject)
	}
	return s
}

func (b *browser) messageCount() (int, error) {
	var n int
	err := b.eval(`rcmail.env.messagecount`, &n)
	return n, err
}

// idle waits until Roundcube has no request in flight: rcmail.command
// ignores most commands while busy.
func (b *browser) idle() error {
	return b.waitJS("Roundcube idle", `window.rcmail && !rcmail.busy`, 30*time.Second)
}

func (b *browser) command(cmd string, args ...any) error {
	if err := b.idle(); err != nil {
		return err
	}
	js, _ := json.Marshal(append([]any{cmd}, args...))
	return b.eval(fmt.Sprintf(`(function(a){ rcmail.command.apply(rcmail, a); return true; })(%s)`, js), nil)
}

// listAfter runs fn (which reloads the list) and waits for the new list.
func (b *browser) listAfter(what string, fn func() error) error {
	if err := b.idle(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := b.markList(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := fn(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return b.waitJS(what, listReady, 30*time.Second)
}

func findRow(rs []row, subject string) (row, bool) {
	for _, r := range rs {
		if r.Subject == subject {
			return r, true
		}
	}
	return row{}, false
}

func (b *browser) clickRow(r row) error {
	if err := b.idle(); err != nil {
		return err
	}
	return b.run("click "+r.Subject, chromedp.Click(chromedp.CSS("#"+r.ID+" td.subject"), chromedp.NodeVisible))
}

// check is an assertion: it logs, and fails the flow with the page's state.
func (b *browser) check(ok bool, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if !ok {
		b.r.logf("FAIL %s", msg)
		return fmt.Errorf("%s", msg)
	}
	b.r.logf("ok   %s", msg)
	return nil
}

func (b *browser) flow() error {
	r := b.r
	url := "http://" + webAddr + "/"
	ctx := b.ctx
	before, err := r.counts(ctx)
	if err != nil {
		return err
	}
	r.logf("decimail before: %v", before)

	// 1. Log in through the form.
	if err := b.run("login page", chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("#rcmloginuser"))); err != nil {
		return err
	}
	if err := b.run("type credentials", chromedp.SendKeys(chromedp.CSS("#rcmloginuser"), "demo"), chromedp.SendKeys(chromedp.CSS("#rcmloginpwd"), "demo")); err != nil {
		return err
	}
	b.shot("login")
	if err := b.run("submit login", chromedp.Click(chromedp.CSS("#rcmloginsubmit"))); err != nil {
		return err
	}
	if err := b.waitJS("INBOX after login", `window.rcmail && rcmail.env.task == 'mail' && rcmail.message_list && !rcmail.busy && rcmail.message_list.rowcount > 0`, 60*time.Second); err != nil {
		return err
	}

	// 2. INBOX by date, newest first (message_sort_col date: SORT (REVERSE DATE)).
	rs, err := b.rows()
	if err != nil {
		return err
	}
	n, err := b.messageCount()
	if err != nil {
		return err
	}
	b.shot("inbox-by-date")
	if err := b.check(n == before["INBOX"], "INBOX shows %d messages, Decimail has %d", n, before["INBOX"]); err != nil {
		return err
	}
	if err := b.check(len(rs) == n, "INBOX list has %d rows", len(rs)); err != nil {
		return err
	}
	wantTop := []string{threadMsgs[4].subject, threadMsgs[3].subject, threadMsgs[2].subject, threadMsgs[1].subject, threadMsgs[0].subject}
	if err := b.check(len(rs) >= 5 && equal(subjects(rs[:5]), wantTop), "by date, newest first, the top rows are the seeded ones: %q", subjects(rs[:min(5, len(rs))])); err != nil {
		return err
	}

	// 3. INBOX by thread (THREAD REFERENCES), as the list options dialog does.
	if err := b.listAfter("threads", func() error { return b.eval(`rcmail.set_list_options(null, 'date', 'DESC', 1), true`, nil) }); err != nil {
		return err
	}
	b.shot("inbox-by-thread")
	if rs, err = b.rows(); err != nil {
		return err
	}
	var threading bool
	b.eval(`!!rcmail.env.threading`, &threading)
	if err := b.check(threading && len(rs) == n, "thread mode on, %d rows", len(rs)); err != nil {
		return err
	}
	root, _ := findRow(rs, threadMsgs[0].subject)
	var kids, grandkids int
	for _, x := range rs {
		if x.Parent == root.UID && x.Depth == 1 && strings.HasPrefix(x.Subject, "Re: Release") {
			kids++
		}
		if x.Depth == 2 && x.Subject == threadMsgs[4].subject {
			grandkids++
		}
	}
	if err := b.check(root.UID != "" && root.Depth == 0 && kids == 2 && grandkids == 1,
		"the thread: root %q (uid %s) with 2 replies and a reply to a reply (got %d, %d)", root.Subject, root.UID, kids, grandkids); err != nil {
		return err
	}
	// The unrelated message, dated inside the thread, is no longer between its rows.
	idx := map[string]int{}
	for i, x := range rs {
		idx[x.Subject] = i
	}
	rootAt := -1
	for i, x := range rs {
		if x.UID == root.UID {
			rootAt = i
		}
	}
	lunch := idx[threadMsgs[1].subject]
	if err := b.check(rootAt >= 0 && (lunch < rootAt || lunch > rootAt+3), "the thread's rows are together (root at row %d, %q at row %d)", rootAt, threadMsgs[1].subject, lunch); err != nil {
		return err
	}

	// 4. Open a message: click its row, the preview shows its body.
	reply, _ := findRow(rs, threadMsgs[3].subject)
	for _, x := range rs {
		if x.Parent == root.UID && x.Depth == 1 {
			reply = x // either reply; find the one whose body we check below
		}
	}
	if err := b.clickRow(reply); err != nil {
		return err
	}
	body := `(function(){ var f = document.getElementById('messagecontframe'); return f && f.contentDocument && f.contentDocument.body ? f.contentDocument.body.innerText : ''; })()`
	if err := b.waitJS("preview of "+reply.Subject, body+`.indexOf('Release plan for 2.0') >= 0 && (`+body+`.indexOf('changelog is not done') >= 0 || `+body+`.indexOf('NOTIFY fix') >= 0)`, 30*time.Second); err != nil {
		return err
	}
	b.shot("message-open")
	b.check(true, "the preview shows the reply's subject and body")

	// 5. Open the view (a query mailbox) from the folder list.
	if err := b.listAfter("open view", func() error {
		js, _ := json.Marshal(viewName)
		return b.eval(fmt.Sprintf(`rcmail.list_mailbox(%s), true`, js), nil)
	}); err != nil {
		return err
	}
	b.shot("view")
	if rs, err = b.rows(); err != nil {
		return err
	}
	if n, err = b.messageCount(); err != nil {
		return err
	}
	var inList bool
	b.eval(fmt.Sprintf(`!!document.querySelector('#mailboxlist a[rel=%q]')`, viewName), &inList)
	if err := b.check(inList, "the folder list shows %q", viewName); err != nil {
		return err
	}
	if err := b.check(n == 4 && len(rs) == 4 && before[viewName] == 4, "the view shows its 4 messages (Decimail: %d; page: %d, rows %q)", before[viewName], n, subjects(rs)); err != nil {
		return err
	}

	// 6. Search INBOX (subject) through the search box.
	if err := b.listAfter("back to INBOX", func() error { return b.eval(`rcmail.list_mailbox('INBOX'), true`, nil) }); err != nil {
		return err
	}
	if err := b.listAfter("search", func() error {
		return b.run("type search", chromedp.Click(chromedp.CSS("#mailsearchform")), chromedp.SendKeys(chromedp.CSS("#mailsearchform"), "Release plan"+kb.Enter))
	}); err != nil {
		return err
	}
	b.shot("search")
	if rs, err = b.rows(); err != nil {
		return err
	}
	if err := b.check(len(rs) == 4, "search \"Release plan\" in INBOX finds the 4 thread messages: %q", subjects(rs)); err != nil {
		return err
	}
	if err := b.listAfter("reset search", func() error { return b.command("reset-search") }); err != nil {
		return err
	}

	// 7. Flag a message: select its row, Mark > Flagged.
	if rs, err = b.rows(); err != nil {
		return err
	}
	lunchRow, ok := findRow(rs, threadMsgs[1].subject)
	if err := b.check(ok, "INBOX shows %q again after the search", threadMsgs[1].subject); err != nil {
		return err
	}
	if err := b.clickRow(lunchRow); err != nil {
		return err
	}
	if err := b.command("mark", "flagged"); err != nil {
		return err
	}
	if err := b.waitJS("flagged row", fmt.Sprintf(`rcmail.message_list.rows[%q] && rcmail.message_list.rows[%q].flagged && !rcmail.busy`, lunchRow.UID, lunchRow.UID), 30*time.Second); err != nil {
		return err
	}
	b.shot("flagged")
	if err := b.waitCount("Flagged", before["Flagged"]+1); err != nil {
		return err
	}

	// 8. Delete a message: select, Delete (a MOVE to Trash).
	if err := b.command("delete"); err != nil {
		return err
	}
	if err := b.waitJS("row deleted", fmt.Sprintf(`!rcmail.busy && !rcmail.message_list.rows[%q]`, lunchRow.UID), 30*time.Second); err != nil {
		return err
	}
	b.shot("deleted")
	if err := b.waitCount("INBOX", before["INBOX"]-1); err != nil {
		return err
	}
	if err := b.waitCount("Trash", before["Trash"]+1); err != nil {
		return err
	}

	// 9. Send a message to ourselves through submission; it arrives in INBOX.
	subject := fmt.Sprintf("Sent from Roundcube at %s", time.Now().UTC().Format("15:04:05"))
	// Roundcube ignores commands while it is busy (after the delete it
	// previews the next message): wait for it, and click again if the
	// compose page does not come.
	for try := 1; ; try++ {
		if err := b.idle(); err != nil {
			return err
		}
		if err := b.run("click Compose", chromedp.Click(chromedp.CSS("#taskmenu a.compose"), chromedp.NodeVisible)); err != nil {
			return err
		}
		err := b.waitJS("compose form", `document.getElementById('compose-subject')`, 10*time.Second)
		if err == nil {
			break
		}
		if try == 3 {
			return err
		}
		b.r.logf("no compose form after click %d; again", try)
	}
	if err := b.waitJS("compose ready", `window.rcmail && rcmail.env.action == 'compose' && rcmail.env.compose_id && !rcmail.busy`, 30*time.Second); err != nil {
		return err
	}
	if err := b.run("fill compose",
		chromedp.Click(chromedp.CSS("#compose_to .recipient-input input"), chromedp.NodeVisible),
		chromedp.SendKeys(chromedp.CSS("#compose_to .recipient-input input"), "demo@example.test, "),
		chromedp.SendKeys(chromedp.CSS("#compose-subject"), subject),
		chromedp.SendKeys(chromedp.CSS("#composebody"), "Hello from headless Chromium.\n"),
	); err != nil {
		return err
	}
	b.shot("compose")
	if err := b.command("send", map[string]any{}); err != nil {
		return err
	}
	if err := b.waitJS("back to the list after sending", `window.rcmail && rcmail.env.task == 'mail' && rcmail.env.action == '' && rcmail.message_list && !rcmail.busy`, 60*time.Second); err != nil {
		return err
	}
	arrived := fmt.Sprintf(`Array.from(document.querySelectorAll('#messagelist tbody tr span.subject a, #messagelist tbody tr td.subject a')).some(function(a){ return a.innerText.trim() == %q; })`, subject)
	deadline := time.Now().Add(60 * time.Second)
	for {
		b.markList()
		b.eval(`rcmail.list_mailbox('INBOX'), true`, nil)
		b.waitJS("INBOX reload", listReady, 30*time.Second)
		var ok bool
		b.eval(arrived, &ok)
		if ok {
			break
		}
		if time.Now().After(deadline) {
			return b.check(false, "the sent message %q arrives in INBOX", subject)
		}
		time.Sleep(time.Second)
	}
	b.shot("sent-arrived")
	b.check(true, "the sent message %q arrived in INBOX", subject)
	if err := b.waitCount("INBOX", before["INBOX"]); err != nil { // -1 deleted, +1 arrived
		return err
	}
	// Submission filed the copy in Sent; Roundcube's own APPEND of it is
	// recognised (imapd_sent_dedup_window): one copy more, not two.
	if err := b.waitCount("Sent", before["Sent"]+1); err != nil {
		return err
	}

	if err := b.viewActions(); err != nil {
		return err
	}

	// Log out.
	if err := b.command("logout"); err != nil {
		return err
	}
	if err := b.run("logged out", chromedp.WaitVisible(chromedp.CSS("#rcmloginuser"))); err != nil {
		return err
	}
	b.shot("logged-out")
	return nil
}

// viewActions acts inside views, where a message's membership follows its
// flags and Delete moves it out of its folders (README "Views"): threads
// and search in a view, reading a message in Unread, deleting from a view.
func (b *browser) viewActions() error {
	r := b.r
	before, err := r.counts(b.ctx)
	if err != nil {
		return err
	}
	// Threads in a view (THREAD REFERENCES on a query mailbox).
	if err := b.listAfter("open view again", func() error {
		js, _ := json.Marshal(viewName)
		return b.eval(fmt.Sprintf(`rcmail.list_mailbox(%s), true`, js), nil)
	}); err != nil {
		return err
	}
	if err := b.listAfter("threads in the view", func() error { return b.eval(`rcmail.set_list_options(null, 'date', 'DESC', 1), true`, nil) }); err != nil {
		return err
	}
	rs, err := b.rows()
	if err != nil {
		return err
	}
	b.shot("view-by-thread")
	root, _ := findRow(rs, threadMsgs[0].subject)
	var deep int
	for _, x := range rs {
		if x.Depth > 0 {
			deep++
		}
	}
	if err := b.check(len(rs) == 4 && root.UID != "" && root.Depth == 0 && deep == 3, "the view by thread: one thread of 4 (%d rows, %d replies under the root)", len(rs), deep); err != nil {
		return err
	}

	// Search within the view.
	if err := b.listAfter("search in the view", func() error {
		return b.run("type search", chromedp.Click(chromedp.CSS("#mailsearchform")), chromedp.SendKeys(chromedp.CSS("#mailsearchform"), "Re: Re:"+kb.Enter))
	}); err != nil {
		return err
	}
	if rs, err = b.rows(); err != nil {
		return err
	}
	b.shot("view-search")
	if err := b.check(len(rs) == 1 && rs[0].Subject == threadMsgs[4].subject, "search \"Re: Re:\" in the view finds %q", subjects(rs)); err != nil {
		return err
	}
	if err := b.listAfter("reset search in the view", func() error { return b.command("reset-search") }); err != nil {
		return err
	}

	// Delete from the view: the message leaves INBOX and the view for Trash.
	if rs, err = b.rows(); err != nil {
		return err
	}
	victim, ok := findRow(rs, threadMsgs[4].subject)
	if err := b.check(ok, "the view shows %q again", threadMsgs[4].subject); err != nil {
		return err
	}
	if err := b.clickRow(victim); err != nil {
		return err
	}
	if err := b.command("delete"); err != nil {
		return err
	}
	if err := b.waitJS("row deleted in the view", fmt.Sprintf(`!rcmail.busy && !rcmail.message_list.rows[%q]`, victim.UID), 30*time.Second); err != nil {
		return err
	}
	b.shot("view-deleted")
	if err := b.waitCount(viewName, before[viewName]-1); err != nil {
		return err
	}
	if err := b.waitCount("INBOX", before["INBOX"]-1); err != nil {
		return err
	}
	if err := b.waitCount("Trash", before["Trash"]+1); err != nil {
		return err
	}

	// Unread: reading a message there takes it out of the view (at the
	// next selection: Roundcube's next request is a new session).
	if err := b.listAfter("open Unread", func() error { return b.eval(`rcmail.list_mailbox('Unread'), true`, nil) }); err != nil {
		return err
	}
	if rs, err = b.rows(); err != nil {
		return err
	}
	n, err := b.messageCount()
	if err != nil {
		return err
	}
	unread := before["Unread"]
	if c, err := r.counts(b.ctx); err == nil {
		unread = c["Unread"]
	}
	if err := b.check(n == unread && len(rs) == n && n > 0, "Unread shows %d messages, Decimail has %d", n, unread); err != nil {
		return err
	}
	b.shot("unread")
	read := rs[0]
	if err := b.clickRow(read); err != nil {
		return err
	}
	body := `(function(){ var f = document.getElementById('messagecontframe'); return f && f.contentDocument && f.contentDocument.body ? f.contentDocument.body.innerText : ''; })()`
	if err := b.waitJS("preview in Unread", body+fmt.Sprintf(`.indexOf(%q) >= 0`, read.Subject), 30*time.Second); err != nil {
		return err
	}
	if err := b.waitJS("marked read", fmt.Sprintf(`rcmail.message_list.rows[%q] && !rcmail.message_list.rows[%q].unread && !rcmail.busy`, read.UID, read.UID), 30*time.Second); err != nil {
		return err
	}
	b.shot("unread-read")
	if err := b.waitCount("Unread", unread-1); err != nil {
		return err
	}
	if err := b.listAfter("refresh Unread", func() error { return b.eval(`rcmail.list_mailbox('Unread'), true`, nil) }); err != nil {
		return err
	}
	if rs, err = b.rows(); err != nil {
		return err
	}
	still := false
	for _, x := range rs {
		still = still || x.UID == read.UID
	}
	b.shot("unread-refreshed")
	if err := b.check(len(rs) == unread-1 && !still, "after a refresh Unread shows %d messages, without %q (uid %s)", len(rs), read.Subject, read.UID); err != nil {
		return err
	}

	// Mark all as read in Unread (the folder menu's action: UID STORE 1:*
	// +FLAGS (\Seen) in the view): Unread empties.
	if err := b.idle(); err != nil {
		return err
	}
	if err := b.eval(`rcmail.mark_all_read('Unread', 'cur'), true`, nil); err != nil {
		return err
	}
	if err := b.waitCount("Unread", 0); err != nil {
		return err
	}
	if err := b.listAfter("refresh Unread after mark all read", func() error { return b.eval(`rcmail.list_mailbox('Unread'), true`, nil) }); err != nil {
		return err
	}
	if rs, err = b.rows(); err != nil {
		return err
	}
	b.shot("unread-all-read")
	if err := b.check(len(rs) == 0, "after Mark all as read, Unread lists %d messages", len(rs)); err != nil {
		return err
	}

	// Empty Trash (the folder menu's Empty, confirmed in its dialog):
	// messages only Trash holds are deleted; All Mail does not change.
	c, err := r.counts(b.ctx)
	if err != nil {
		return err
	}
	if err := b.listAfter("open Trash", func() error { return b.eval(`rcmail.list_mailbox('Trash'), true`, nil) }); err != nil {
		return err
	}
	if err := b.command("purge"); err != nil {
		return err
	}
	if err := b.run("confirm Empty", chromedp.Click(chromedp.CSS(".ui-dialog .ui-dialog-buttonset button.mainaction"), chromedp.NodeVisible)); err != nil {
		return err
	}
	if err := b.waitJS("Trash emptied", `!rcmail.busy && rcmail.message_list.rowcount == 0`, 30*time.Second); err != nil {
		return err
	}
	b.shot("trash-emptied")
	if err := b.waitCount("Trash", 0); err != nil {
		return err
	}
	return b.waitCount("All Mail", c["All Mail"])
}

// waitCount waits until Decimail counts want messages in mailbox
// (`decimail mailbox list`; flag changes commit lazily, so a few polls).
func (b *browser) waitCount(mailbox string, want int) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := b.r.counts(b.ctx)
		if err != nil {
			return err
		}
		if c[mailbox] == want {
			return b.check(true, "Decimail: %s has %d messages", mailbox, want)
		}
		if time.Now().After(deadline) {
			return b.check(false, "Decimail: %s has %d messages, want %d", mailbox, c[mailbox], want)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
