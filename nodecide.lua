return { params = {} }
