module tiocsti

go 1.26
