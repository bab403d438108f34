package query

import (
	"strings"
)

// Folder terms exist in mailbox definitions only (ParseDefinition), not in
// SEARCH: they read the folders (mailboxes without a definition) that hold
// a message, which IMAP SEARCH has no key for.
//
//	FOLDER name                 a folder called name holds the message
//	ONLYFOLDER name             no folder but name holds it
//	ONLYFOLDER (name1 name2 …)  no folder but these holds it
//
// Names are compared exactly, as mailbox names (INBOX in any case is INBOX,
// rfc3501.txt:978). ONLYFOLDER says nothing about folders that are not
// there: "NOT ONLYFOLDER (Trash Junk)" is "some folder other than Trash and
// Junk holds it", the rule a view follows by default (ViewNode).

// Folder is FOLDER name.
type Folder struct{ Name string }

// OnlyFolder is ONLYFOLDER name or ONLYFOLDER (name ...); Names has no
// duplicates, in the order written.
type OnlyFolder struct{ Names []string }

func (Folder) node()     {}
func (OnlyFolder) node() {}

// TrashFolders are the folders a view leaves out by default: a message only
// they hold is on its way out (RFC 6154 lets \All leave out \Trash and
// \Junk, rfc6154.txt:181-185: "MAY omit").
var TrashFolders = []string{"Trash", "Junk"}

// Kept is the default rule of a view: "NOT ONLYFOLDER (Trash Junk)".
var Kept Node = Not{X: OnlyFolder{Names: TrashFolders}}

// ViewNode is what a query mailbox with definition n holds: n itself when
// it has a folder term (the definition says for itself which folders
// count), else n AND Kept.
func ViewNode(n Node) Node {
	if UsesFolders(n) {
		return n
	}
	return And{n, Kept}
}

// UsesFolders reports whether a definition has a folder term.
func UsesFolders(n Node) bool {
	return walk(n, func(n Node) bool {
		switch n.(type) {
		case Folder, OnlyFolder:
			return true
		}
		return false
	})
}

// NormName canonicalises a mailbox name: INBOX is case-insensitive (RFC
// 3501 §5.1), including as the first level of a hierarchy. The store's
// names and the folder terms of definitions both use it (store.NormName).
func NormName(name string) string {
	if strings.EqualFold(name, "INBOX") {
		return "INBOX"
	}
	if len(name) > 6 && strings.EqualFold(name[:6], "INBOX/") {
		return "INBOX" + name[5:]
	}
	return name
}

// folderKey parses the operand of FOLDER or ONLYFOLDER (k).
func (s *stream) folderKey(k string) (Node, error) {
	if k == "ONLYFOLDER" && s.pos < len(s.args) && s.args[s.pos].Kind == List {
		list := s.args[s.pos]
		s.pos++
		if len(list.List) == 0 {
			return nil, synErr("()", "empty folder list after %s", k)
		}
		sub := &stream{args: list.List}
		var names []string
		for sub.pos < len(sub.args) {
			name, err := sub.operand(k, true)
			if err != nil {
				return nil, err
			}
			if name == "" {
				return nil, synErr(k, "empty folder name after")
			}
			if name = NormName(name); !contains2(names, name) {
				names = append(names, name)
			}
		}
		return OnlyFolder{Names: names}, nil
	}
	name, err := s.operand(k, true)
	if err != nil {
		return nil, err
	}
	if name == "" {
		return nil, synErr(k, "empty folder name after")
	}
	if k == "FOLDER" {
		return Folder{Name: NormName(name)}, nil
	}
	return OnlyFolder{Names: []string{NormName(name)}}, nil
}

func contains2(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// writeFolder renders a folder term (String).
func writeFolder(b *strings.Builder, n Node) {
	switch n := n.(type) {
	case Folder:
		b.WriteString("FOLDER " + astring(n.Name, false))
	case OnlyFolder:
		b.WriteString("ONLYFOLDER ")
		if len(n.Names) == 1 {
			b.WriteString(astring(n.Names[0], false))
			return
		}
		b.WriteByte('(')
		for i, name := range n.Names {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(astring(name, false))
		}
		b.WriteByte(')')
	}
}

// folderCond compiles a folder term: a probe of the message's memberships
// (mailbox_messages by message_id) joined to their mailboxes, folders only.
func (c *compiler) folderCond(n Node) {
	const sub = `SELECT 1 FROM mailbox_messages fm JOIN mailboxes fb ON fb.id = fm.mailbox_id
		WHERE fm.message_id = `
	switch n := n.(type) {
	case Folder:
		c.w("EXISTS (", sub, c.col("id"), " AND fb.definition IS NULL AND fb.name = ", c.param(n.Name), "::text)")
	case OnlyFolder:
		c.w("NOT EXISTS (", sub, c.col("id"), " AND fb.definition IS NULL AND fb.name <> ALL(", c.param(n.Names), "::text[]))")
	}
}

// evalFolder is Eval of a folder term.
func evalFolder(n Node, m *Msg) bool {
	switch n := n.(type) {
	case Folder:
		return contains2(m.Folders, n.Name)
	case OnlyFolder:
		for _, f := range m.Folders {
			if !contains2(n.Names, f) {
				return false
			}
		}
		return true
	}
	return false
}
