module try

go 1.26
