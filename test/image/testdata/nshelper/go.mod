module nshelper

go 1.26
