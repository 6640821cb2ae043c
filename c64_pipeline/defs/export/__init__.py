"""Export: the merged model, its GGUF files and Ollama Modelfile, and the llama.cpp check."""
