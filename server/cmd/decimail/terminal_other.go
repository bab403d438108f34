//go:build !unix

package main

func takeTerminal() (restore func()) { return func() {} }
